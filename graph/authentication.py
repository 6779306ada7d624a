"""Authentication for everything but the public endpoints: a bearer access token,
verified and checked for a live session (or an active client) on every request."""

from __future__ import annotations

import structlog
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from domain.principals import Human, Principal, Service
from domain.security_events import Outcome, SecurityEvent
from graph.identity import Identity
from graph.logs import describe_exception
from graph.middleware import REQUEST_META, header
from graph.responses import oauth_error, rate_limited
from resolvers.auth import AuthContext, authenticate, flush_events
from resolvers.context import RequestMeta
from resolvers.tokens import TokenRejected

log = structlog.get_logger("phigate.authentication")
PRINCIPAL = "phigate.principal"
PUBLIC_PATHS = frozenset(
    {"/health", "/ready", "/auth/login", "/auth/refresh", "/oauth/token", "/.well-known/jwks.json"}
)
CHALLENGE = 'Bearer realm="phigate"'


def bearer_token(scope: Scope) -> str | None:
    value = header(scope, b"authorization")
    if value is None:
        return None
    kind, _, token = value.partition(" ")
    return token.strip() or None if kind.lower() == "bearer" else None


def _is_ide_shell(scope: Scope) -> bool:
    """The GraphiQL page itself (and its self-hosted scripts and styles): a static shell
    with no data and no schema in it. Every request it then sends carries the token the
    user pastes into it."""
    if scope["method"] == "GET" and scope["path"].startswith("/graphiql-assets/"):
        return True
    return (
        scope["method"] == "GET"
        and scope["path"] == "/graphql"
        and b"query=" not in scope.get("query_string", b"")
        and b"extensions=" not in scope.get("query_string", b"")
        and "text/html" in (header(scope, b"accept") or "")
    )


class BearerAuthentication:
    def __init__(self, app: ASGIApp, *, identity: Identity) -> None:
        self.app = app
        self.identity = identity

    async def _check(self, ctx: AuthContext, token: str) -> Principal | Response:
        """The caller, or the response that refuses them."""
        try:
            principal = await authenticate(ctx, token)
        except TokenRejected as rejected:
            ctx.record(
                SecurityEvent.ACCESS_TOKEN_REJECTED,
                Outcome.DENIED,
                reason=rejected.reason.upper()[:60],
            )
            await flush_events(ctx)
            challenge = f'{CHALLENGE}, error="invalid_token"'
            return oauth_error(
                401,
                "invalid_token",
                "The access token is invalid or has expired.",
                {"WWW-Authenticate": challenge},
            )
        retry_after = await self.identity.limits.retry_after(
            self.identity.limits.graphql, "caller", principal.actor_id
        )
        if retry_after is not None:
            ctx.record(
                SecurityEvent.RATE_LIMITED,
                Outcome.DENIED,
                actor_id=principal.actor_id,
                reason="GRAPHQL",
            )
            await flush_events(ctx)
            return rate_limited(retry_after)
        return principal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS or _is_ide_shell(scope):
            await self.app(scope, receive, send)
            return
        meta: RequestMeta = scope.get("state", {}).get(REQUEST_META) or RequestMeta(
            request_id="unknown"
        )
        token = bearer_token(scope)
        if token is None:
            response = oauth_error(
                401,
                "invalid_token",
                "A bearer access token is required.",
                {"WWW-Authenticate": CHALLENGE},
            )
            await response(scope, receive, send)
            return
        ctx = self.identity.context(meta)
        try:
            outcome = await self._check(ctx, token)
        except Exception as exc:
            log.error("authentication_failed", **describe_exception(exc))
            outcome = oauth_error(
                503, "temporarily_unavailable", "Retry shortly.", {"Retry-After": "5"}
            )
        if not isinstance(outcome, Human | Service):
            await outcome(scope, receive, send)
            return
        principal: Principal = outcome
        scope.setdefault("state", {})[PRINCIPAL] = principal
        await self.app(scope, receive, send)
