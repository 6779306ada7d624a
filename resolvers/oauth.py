"""The OAuth2 client-credentials grant (RFC 6749 §4.4), by authlib. authlib's server is
synchronous; the client row is fetched before it runs, and it runs in a worker thread
because verifying the client secret (argon2id) is deliberately slow."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import anyio
from authlib.oauth2 import AuthorizationServer, OAuth2Request
from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc6749.errors import InvalidScopeError, OAuth2Error
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from sqlalchemy.engine import Row

from db import audit, clients
from db.unit_of_work import RequestDatabase
from domain.roles import ServiceScope
from domain.security_events import Outcome, SecurityEvent
from resolvers.auth import AuthContext, ClientSession, flush_events
from resolvers.identity import Passwords


class _Client(ClientMixin):
    def __init__(self, row: Row[Any], passwords: Passwords) -> None:
        self.row = row
        self._passwords = passwords

    def get_client_id(self) -> str:
        return str(self.row.client_id)

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        granted = set(self.row.scopes)
        requested = set(scope.split()) if scope else granted
        if not requested <= granted:
            raise InvalidScopeError()
        return " ".join(sorted(requested))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        # In a worker thread. After a rotation the previous secret works until its time.
        if self._passwords.check(self.row.secret_hash, client_secret):
            return True
        previous, until = self.row.previous_secret_hash, self.row.previous_secret_until
        return bool(
            previous is not None
            and until is not None
            and until > datetime.now(UTC)
            and self._passwords.check(previous, client_secret)
        )

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


class _Grant(ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


class _FormRequest(OAuth2Request):
    def __init__(self, uri: str, headers: Mapping[str, str], form: dict[str, str]) -> None:
        super().__init__("POST", uri, headers=headers)  # keep case-insensitive lookups
        self._form = form
        self.payload = BasicOAuth2Payload(form)

    @property
    def args(self) -> dict[str, str]:
        return {}

    @property
    def form(self) -> dict[str, str]:
        return self._form


class _Server(AuthorizationServer):
    """One per request: it knows the single client that request may be about."""

    def __init__(self, ctx: AuthContext, client: _Client | None, session: ClientSession) -> None:
        super().__init__(scopes_supported=[scope.value for scope in ServiceScope])
        self._ctx = ctx
        self._client = client
        self._session = session
        self.register_grant(_Grant)
        self.register_token_generator("default", self._generate)

    def query_client(self, client_id: str) -> _Client | None:
        if self._client is not None and self._client.get_client_id() == client_id:
            return self._client
        return None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """Access tokens are self-contained JWTs; nothing to store."""

    def _generate(
        self, grant_type: str, client: _Client, scope: str | None = None, **_: Any
    ) -> dict[str, Any]:
        ttl = int(self._ctx.config.access_ttl.total_seconds())
        # authlib's client-credentials grant does not narrow the scope itself.
        scope = client.get_allowed_scope(scope)  # raises invalid_scope beyond the grant
        claims = {"client_id": client.get_client_id(), "scope": scope, **self._session.claims()}
        access = self._ctx.tokens.sign(client.get_client_id(), claims, now=self._ctx.now)
        return {"token_type": "Bearer", "access_token": access, "expires_in": ttl, "scope": scope}

    def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
        return request

    def handle_response(self, status: int, body: Any, headers: Any) -> tuple[int, Any, Any]:
        return status, body, headers

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None


def client_id_of(headers: Mapping[str, str], form: Mapping[str, str]) -> str | None:
    basic_id, _ = extract_basic_authorization(headers)
    return basic_id or form.get("client_id")


def _address_allowed(row: Row[Any], client_ip: str | None) -> bool:
    networks = row.ip_allowlist or []
    if not networks:
        return True
    if client_ip is None:
        return False
    address = ipaddress.ip_address(client_ip)
    return any(address in ipaddress.ip_network(str(network)) for network in networks)


async def client_token(
    ctx: AuthContext, *, uri: str, headers: Mapping[str, str], form: dict[str, str]
) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
    client_id = client_id_of(headers, form)
    db = RequestDatabase(ctx.engine)
    try:
        row = await clients.get_client(db, client_id) if client_id else None
    finally:
        await db.close()
    usable = (
        row is not None and row.status == "ACTIVE" and _address_allowed(row, ctx.meta.client_ip)
    )
    if not usable:
        # Same cost as a real secret check, so probing for client ids learns nothing.
        await ctx.config.passwords.verify(None, "")
    await ctx.tokens.prepare()
    session = ClientSession()
    server = _Server(
        ctx, _Client(row, ctx.config.passwords) if usable and row is not None else None, session
    )
    try:
        request = _FormRequest(uri, headers, form)  # refuses plain HTTP beyond loopback
    except OAuth2Error as error:
        status, body, response_headers = error()
    else:
        status, body, response_headers = await anyio.to_thread.run_sync(
            server.create_token_response, request
        )
    actor = {"actor_id": client_id[:100] if client_id else None, "actor_kind": "SERVICE"}
    if status == 200 and client_id is not None:
        ctx.record(SecurityEvent.CLIENT_TOKEN_ISSUED, Outcome.ALLOWED, **actor)
        # The token's session, stored with the event before the token leaves.
        db = RequestDatabase(ctx.engine)
        try:
            await session.store(
                db, client_id=client_id, now=ctx.now, lifetime=ctx.config.access_ttl
            )
            await audit.append(db, ctx.events)
            await db.commit()
        finally:
            await db.close()
        ctx.events.clear()
        return status, body, list(response_headers)
    else:
        reason = (
            "IP_NOT_ALLOWED"
            if row is not None and not _address_allowed(row, ctx.meta.client_ip)
            else str(body.get("error", "refused")).upper()
        )
        ctx.record(SecurityEvent.CLIENT_AUTH_FAILED, Outcome.DENIED, reason=reason, **actor)
    await flush_events(ctx)
    return status, body, list(response_headers)
