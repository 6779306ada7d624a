"""The console's sign-in at an external OpenID Connect provider: the authorization-code
flow with PKCE (RFC 7636, S256), a state (RFC 6749 §10.12) and a nonce (OIDC Core
§3.1.2.1). The protocol pieces are authlib's; the token request is one POST.

/console/oidc/start sends the browser to the provider, holding the flow's state, nonce
and code verifier in a short-lived cookie of its own (HttpOnly, Secure, SameSite=Lax:
the provider's redirect back is a cross-site navigation, which a Strict cookie would
not survive). /console/oidc/callback checks the state against that cookie, exchanges
the code with the verifier, verifies the ID token (signature by the provider's keys,
issuer, the console's client id as audience, the nonce, MFA, one mapped role), opens a
console session like a local sign-in's and sets the console cookie. Every failure is
recorded and answered with a page in plain words; nothing the provider sent is echoed.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from datetime import timedelta
from html import escape
from typing import Any

import structlog
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from domain.security_events import Outcome, SecurityEvent
from graph.http.console.cookie import (
    CookieSession,
    CookieSigner,
    cookie_values,
    own_origin,
    secure_transport,
    set_cookie_header,
)
from graph.http.middleware import HTML_CSP
from graph.http.responses import NO_STORE
from graph.http.routes.auth import over_limit, request_meta
from graph.identity import Identity
from graph.logs import describe_exception
from graph.settings import Settings
from resolvers import auth
from resolvers.tokens import TokenRejected

log = structlog.get_logger("phigate.console.oidc")
FLOW_COOKIE = "__Host-phigate-oidc"
FLOW_SECONDS = 600
CALLBACK_PATH = "/console/oidc/callback"
TOKEN_TIMEOUT = 10
MAX_TOKEN_RESPONSE = 64 * 1024


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """The token endpoint answers where it was asked: a redirect (to another host, or to
    plain HTTP) is an error, never followed with the code and verifier."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_NO_REDIRECTS = urllib.request.build_opener(_RefuseRedirects)


def _flow_cookie(value: str, max_age: int) -> str:
    return f"{FLOW_COOKIE}={value}; Path=/; Max-Age={max_age}; Secure; HttpOnly; SameSite=Lax"


def _read_flow(request: Request) -> tuple[str, str, str] | None:
    values = cookie_values(request.scope, FLOW_COOKIE)
    parts = values[0].split(".") if len(values) == 1 else []
    if len(parts) != 3 or not all(
        part.replace("-", "").replace("_", "").isalnum() for part in parts
    ):
        return None
    return parts[0], parts[1], parts[2]


def _page(title: str, message: str, status: int) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}"
        f"</title></head><body><h1>{escape(title)}</h1><p>{escape(message)}</p>"
        "<p><a href='/console'>Back to the console's sign-in</a></p></body></html>",
        status_code=status,
        headers={**NO_STORE, "Content-Security-Policy": HTML_CSP},
    )


class OidcConsole:
    def __init__(self, identity: Identity, settings: Settings, signer: CookieSigner) -> None:
        assert settings.oidc_console_client_id  # the settings require the issuer with it
        assert identity.oidc is not None
        self.identity = identity
        self.trust = identity.oidc
        self.client_id = settings.oidc_console_client_id
        self.client_secret = settings.oidc_console_client_secret
        self.authorization_endpoint = settings.oidc_authorization_endpoint or ""
        self.token_endpoint = settings.oidc_token_endpoint or ""
        self.scopes = settings.oidc_console_scopes
        self.signer = signer
        self.lifetime = timedelta(hours=settings.oidc_console_session_hours)

    def _redirect_uri(self, request: Request) -> str:
        return f"{own_origin(request.scope)}{CALLBACK_PATH}"

    async def start(self, request: Request) -> Response:
        if not secure_transport(request.scope):
            return _page(
                "Sign-in needs HTTPS",
                "The console signs in over HTTPS only (or on this machine's loopback address).",
                400,
            )
        state, nonce = generate_token(32), generate_token(32)
        verifier = generate_token(64)  # RFC 7636: 43 to 128 characters
        location = prepare_grant_uri(
            self.authorization_endpoint,
            client_id=self.client_id,
            response_type="code",
            redirect_uri=self._redirect_uri(request),
            scope=self.scopes,
            state=state,
            nonce=nonce,
            code_challenge=create_s256_code_challenge(verifier),
            code_challenge_method="S256",
        )
        return RedirectResponse(
            location,
            status_code=303,
            headers={
                **NO_STORE,
                "Set-Cookie": _flow_cookie(f"{state}.{nonce}.{verifier}", FLOW_SECONDS),
            },
        )

    async def _exchange(self, request: Request, code: str, verifier: str) -> str:
        """The ID token the provider gives for the code, or TokenRejected."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self._redirect_uri(request),
            "client_id": self.client_id,
            "code_verifier": verifier,
        }
        if self.client_secret:
            form["client_secret"] = self.client_secret
        body = urllib.parse.urlencode(form).encode()

        def post() -> dict[str, Any]:
            call = urllib.request.Request(  # noqa: S310 - https (or loopback) by settings
                self.token_endpoint,
                data=body,
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Accept": "application/json",
                },
                method="POST",
            )
            try:
                with _NO_REDIRECTS.open(call, timeout=TOKEN_TIMEOUT) as response:
                    answer = json.loads(response.read(MAX_TOKEN_RESPONSE))
            except urllib.error.HTTPError:
                raise TokenRejected("idp_code_refused") from None
            except (OSError, ValueError):
                raise TokenRejected("idp_token_endpoint_unavailable") from None
            return answer if isinstance(answer, dict) else {}

        answer = await asyncio.to_thread(post)
        token = answer.get("id_token")
        if not isinstance(token, str):
            raise TokenRejected("idp_no_id_token")
        return token

    async def callback(self, request: Request) -> Response:
        ctx = self.identity.context(request_meta(request))
        refused = await over_limit(
            self.identity,
            ctx,
            self.identity.limits.login,
            address=ctx.meta.client_ip or "unknown",
        )
        if refused is not None:
            return refused
        flow = _read_flow(request)
        params = request.query_params
        reason: str | None = None
        if flow is None:
            reason = "OIDC_NO_FLOW"
        elif params.get("state") != flow[0]:
            reason = "OIDC_STATE_MISMATCH"
        elif params.get("error"):
            reason = "OIDC_PROVIDER_REFUSED"
        elif not params.get("code"):
            reason = "OIDC_NO_CODE"
        human = None
        if reason is None and flow is not None:
            try:
                token = await self._exchange(request, params["code"], flow[2])
                human = await self.trust.verify(
                    token, now=ctx.now, audience=self.client_id, nonce=flow[1]
                )
            except TokenRejected as rejected:
                reason = rejected.reason.upper()
            except Exception as exc:
                log.error("oidc_sign_in_failed", **describe_exception(exc))
                reason = "OIDC_ERROR"
        clear_flow = _flow_cookie("", 0)
        if human is None:
            ctx.record(SecurityEvent.LOGIN_FAILED, Outcome.DENIED, reason=(reason or "")[:60])
            await auth.flush_events(ctx)
            response = _page(
                "Sign-in was not completed",
                "The identity provider's sign-in could not be accepted. Start again from the"
                " console; if it keeps failing, your account may not be mapped to a phigate"
                " role or may lack multi-factor authentication.",
                400,
            )
            response.headers["Set-Cookie"] = clear_flow
            return response
        session = await auth.external_console_session(ctx, human, lifetime=self.lifetime)
        max_age = int(min(self.lifetime, self.identity.config.session.absolute).total_seconds())
        response = RedirectResponse("/console", status_code=303, headers=NO_STORE)
        response.headers.append(
            "Set-Cookie",
            set_cookie_header(
                self.signer.value(CookieSession(session.session_id, session.secret, session.actor)),
                max_age=max_age,
            ),
        )
        response.headers.append("Set-Cookie", clear_flow)
        return response
