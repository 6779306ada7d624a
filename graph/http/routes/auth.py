"""/auth/login, /auth/refresh, /auth/logout, /oauth/token and the JWKS document."""

from __future__ import annotations

import base64
import binascii
import functools
import json
from typing import Any
from urllib.parse import parse_qsl, unquote

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from domain.principals import Human
from domain.security_events import Outcome, SecurityEvent
from domain.text import UNSAFE_TEXT_RULE, is_unsafe_text
from graph.http.authentication import PRINCIPAL
from graph.http.middleware import REQUEST_META
from graph.http.responses import NO_STORE, oauth_error, rate_limited
from graph.identity import Identity
from graph.logs import describe_exception
from resolvers import auth, oauth
from resolvers.context import RequestMeta
from resolvers.identity import fingerprint

log = structlog.get_logger("phigate.auth")
MAX_BODY_BYTES = 8 * 1024
GENERIC_FAILURE = "Invalid username, password or one-time code."
LOGIN_FIELDS = {"username": 64, "password": 256, "totp": 10}
_FORM_FIELDS = frozenset({"grant_type", "client_id", "client_secret", "scope"})


class BadRequest(Exception):
    status = 400

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description

    def response(self) -> Response:
        return oauth_error(self.status, "invalid_request", self.description)


class BodyTooLarge(BadRequest):
    status = 413

    def __init__(self) -> None:
        super().__init__(f"The body must be at most {MAX_BODY_BYTES} bytes.")


async def _limited_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and not declared.isdigit():
        raise BadRequest("The Content-Length header must be a number of bytes.")
    if declared is not None and int(declared) > MAX_BODY_BYTES:
        raise BodyTooLarge
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise BodyTooLarge
    return body


def _unreadable_basic_credentials(headers: Any) -> str | None:
    """What is wrong with HTTP Basic client credentials that cannot be read (not UTF-8,
    or holding a NUL after decoding): authlib would raise on them, and a client's
    malformed header is its error, not an outage."""
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return "The Basic credentials must be base64 of UTF-8 text."
    if is_unsafe_text(unquote(decoded)):
        return f"The Basic credentials {UNSAFE_TEXT_RULE}."
    return None


def _text_field(name: str, value: str) -> str:
    if is_unsafe_text(value):
        raise BadRequest(f"The field '{name}' {UNSAFE_TEXT_RULE}.")
    return value


async def json_fields(request: Request, fields: dict[str, int]) -> dict[str, str]:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise BadRequest("The body must be JSON (Content-Type: application/json).")
    raw = await _limited_body(request)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadRequest("The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.")
    values: dict[str, str] = {}
    for name, limit in fields.items():
        value = body.get(name)
        if value is None:
            raise BadRequest(f"The field '{name}' is required.")
        if not isinstance(value, str) or not value or len(value) > limit:
            raise BadRequest(
                f"The field '{name}' must be a non-empty string of at most {limit} characters."
            )
        values[name] = _text_field(name, value)
    return values


def request_meta(request: Request) -> RequestMeta:
    return request.scope.get("state", {}).get(REQUEST_META) or RequestMeta(request_id="unknown")


def _tokens(response: auth.TokenResponse) -> JSONResponse:
    return JSONResponse(response.as_json(), headers=NO_STORE)


UNAVAILABLE = "Sign-in is temporarily unavailable; retry shortly."


async def over_limit(
    identity: Identity, ctx: auth.AuthContext, item: Any, **keys: str
) -> Response | None:
    """429 (recorded) when any of the keys is over the item's limit, else None."""
    for kind, value in keys.items():
        retry_after = await identity.limits.retry_after(item, kind, value)
        if retry_after is not None:
            ctx.record(SecurityEvent.RATE_LIMITED, Outcome.DENIED, reason=f"{kind.upper()}_LIMIT")
            await auth.flush_events(ctx)
            return rate_limited(retry_after)
    return None


async def sign_in_with_password(
    identity: Identity, ctx: auth.AuthContext, request: Request, login: Any
) -> Any:
    """Username, password and TOTP code under one set of rules, for /auth/login and the
    console's sign-in alike: the fields checked, the per-address and per-account limits,
    then ``login``; every refusal is the same answer. The response that refuses, or what
    ``login`` gave."""
    try:
        fields = await json_fields(request, LOGIN_FIELDS)
    except BadRequest as bad:
        return bad.response()
    refused = await over_limit(
        identity,
        ctx,
        identity.limits.login,
        address=ctx.meta.client_ip or "unknown",
        account=fingerprint(fields["username"].lower()),
    )
    if refused is not None:
        return refused
    try:
        return await login(
            ctx, username=fields["username"], password=fields["password"], code=fields["totp"]
        )
    except auth.AuthenticationFailed:
        return oauth_error(401, "invalid_grant", GENERIC_FAILURE)


def fail_closed(endpoint: Any) -> Any:
    """An endpoint whose work (or whose security event) could not be recorded answers
    503 and hands out nothing."""

    @functools.wraps(endpoint)
    async def guarded(self: Any, request: Request) -> Response:
        try:
            return await endpoint(self, request)
        except Exception as exc:
            log.error("auth_endpoint_failed", **describe_exception(exc))
            return oauth_error(503, "temporarily_unavailable", UNAVAILABLE, {"Retry-After": "5"})

    return guarded


class AuthEndpoints:
    def __init__(self, identity: Identity) -> None:
        self.identity = identity

    async def _limited(self, ctx: auth.AuthContext, item: Any, **keys: str) -> Response | None:
        return await over_limit(self.identity, ctx, item, **keys)

    @fail_closed
    async def login(self, request: Request) -> Response:
        ctx = self.identity.context(request_meta(request))
        outcome = await sign_in_with_password(self.identity, ctx, request, auth.login)
        return outcome if isinstance(outcome, Response) else _tokens(outcome)

    @fail_closed
    async def refresh(self, request: Request) -> Response:
        ctx = self.identity.context(request_meta(request))
        try:
            fields = await json_fields(request, {"refresh_token": 200})
        except BadRequest as bad:
            return bad.response()
        refused = await self._limited(
            ctx, self.identity.limits.login, address=ctx.meta.client_ip or "unknown"
        )
        if refused is not None:
            return refused
        try:
            response = await auth.refresh(ctx, refresh_token=fields["refresh_token"])
        except auth.AuthenticationFailed:
            return oauth_error(
                401, "invalid_grant", "The refresh token is invalid, used or expired."
            )
        return _tokens(response)

    @fail_closed
    async def logout(self, request: Request) -> Response:
        principal = request.scope.get("state", {}).get(PRINCIPAL)
        if not isinstance(principal, Human):
            return oauth_error(400, "invalid_request", "Only a user's session can be logged out.")
        await auth.logout(self.identity.context(request_meta(request)), principal)
        return Response(status_code=204, headers=NO_STORE)

    @fail_closed
    async def token(self, request: Request) -> Response:
        ctx = self.identity.context(request_meta(request))
        if (
            request.headers.get("content-type", "").split(";")[0].strip()
            != "application/x-www-form-urlencoded"
        ):
            return oauth_error(
                400, "invalid_request", "The body must be application/x-www-form-urlencoded."
            )
        try:
            form = dict(parse_qsl((await _limited_body(request)).decode(), keep_blank_values=True))
            if any(is_unsafe_text(key) for key in form):
                raise BadRequest(f"A field name {UNSAFE_TEXT_RULE}.")
            form = {
                key: _text_field(key if key in _FORM_FIELDS else "(unnamed)", value)
                for key, value in form.items()
            }
        except BadRequest as bad:
            return bad.response()
        except (UnicodeDecodeError, ValueError):
            return oauth_error(400, "invalid_request", "The body is not valid form data.")
        unreadable = _unreadable_basic_credentials(request.headers)
        if unreadable is not None:
            return oauth_error(
                401, "invalid_client", unreadable, {"WWW-Authenticate": 'Basic realm="phigate"'}
            )
        refused = await self._limited(
            ctx,
            self.identity.limits.token,
            address=ctx.meta.client_ip or "unknown",
            client=oauth.client_id_of(request.headers, form) or "none",
        )
        if refused is not None:
            return refused
        status, body, headers = await oauth.client_token(
            ctx, uri=str(request.url), headers=request.headers, form=form
        )
        return JSONResponse(body, status_code=status, headers={**dict(headers), **NO_STORE})

    async def jwks(self, _: Request) -> Response:
        return JSONResponse(
            await self.identity.tokens.jwks(), headers={"Cache-Control": "public, max-age=300"}
        )

    def routes(self) -> list[Route]:
        return [
            Route("/auth/login", self.login, methods=["POST"]),
            Route("/auth/refresh", self.refresh, methods=["POST"]),
            Route("/auth/logout", self.logout, methods=["POST"]),
            Route("/oauth/token", self.token, methods=["POST"]),
            Route("/.well-known/jwks.json", self.jwks, methods=["GET"]),
        ]
