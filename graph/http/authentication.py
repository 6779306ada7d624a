"""Authentication for everything but the public endpoints: a bearer access token,
verified and checked for a live session (or an active client) on every request."""

from __future__ import annotations

import structlog
from cachetools import TTLCache
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from db.sessions import SessionEnded, VerifiedSession
from db.unit_of_work import RequestDatabase
from domain.principals import Principal
from domain.security_events import Outcome, SecurityEvent
from graph.http.middleware import REQUEST_META, header
from graph.http.responses import RETRY_AFTER, oauth_error, rate_limited, unavailable
from graph.identity import Identity
from graph.logs import describe_exception
from resolvers.auth import AuthContext, authenticate, flush_events
from resolvers.context import RequestMeta
from resolvers.tokens import TokenRejected

log = structlog.get_logger("phigate.authentication")
PRINCIPAL = "phigate.principal"
# The request's database connection, its transaction opened by the session check, and
# what that check established (row scope, open break-glass episodes).
REQUEST_DATABASE = "phigate.request_database"
VERIFIED_SESSION = "phigate.verified_session"
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


def _is_static_asset(scope: Scope) -> bool:
    """The self-hosted GraphiQL scripts and styles: files, no data, no schema."""
    return scope["method"] == "GET" and scope["path"].startswith("/graphiql-assets/")


def _wants_console_page(scope: Scope) -> bool:
    """A browser opening /graphql. Answered, without a token, with the static GraphiQL
    page and nothing else: the request never reaches the GraphQL view, so whatever its
    query string holds (in whatever encoding) executes nothing."""
    return (
        scope["method"] == "GET"
        and scope["path"] == "/graphql"
        and "text/html" in (header(scope, b"accept") or "")
    )


class BearerAuthentication:
    def __init__(self, app: ASGIApp, *, identity: Identity, console_page: str = "") -> None:
        self.app = app
        self.identity = identity
        self.console_page = console_page
        # Addresses already reported over the anonymous limit, for about a window.
        self._reported: TTLCache[str, bool] = TTLCache(maxsize=10_000, ttl=60)

    async def _refuse_token(self, ctx: AuthContext, reason: str) -> Response:
        # An invalid token is an anonymous request: counted like one, so a flood of
        # forged tokens cannot become a flood of audit writes.
        address = ctx.meta.client_ip or "unknown"
        retry_after = await self.identity.limits.anonymous_retry_after(address)
        if retry_after is not None:
            return rate_limited(retry_after)
        ctx.record(SecurityEvent.ACCESS_TOKEN_REJECTED, Outcome.DENIED, reason=reason[:60])
        await flush_events(ctx)
        return oauth_error(
            401,
            "invalid_token",
            "The access token is invalid or has expired.",
            {"WWW-Authenticate": f'{CHALLENGE}, error="invalid_token"'},
        )

    async def _check(
        self, ctx: AuthContext, token: str
    ) -> tuple[Principal, RequestDatabase, VerifiedSession] | Response:
        """The caller and the request's open transaction, or the response that refuses
        them. The transaction begins with the database's own check of the session,
        which also sets the row context row-level security reads."""
        try:
            presented = await authenticate(ctx, token)
        except TokenRejected as rejected:
            return await self._refuse_token(ctx, rejected.reason.upper())
        # The caller's rate limit before the request's connection is taken: counting may
        # need a connection of its own, and a request holding one while waiting for
        # another can starve the pool (every connection held, every holder waiting).
        actor = presented.claimed.actor_id
        retry_after = await self.identity.limits.retry_after(
            self.identity.limits.graphql, "caller", actor
        )
        if retry_after is not None:
            ctx.record(SecurityEvent.RATE_LIMITED, Outcome.DENIED, actor_id=actor, reason="GRAPHQL")
            await flush_events(ctx)
            return rate_limited(retry_after)
        db = RequestDatabase(self.identity.engine, opening=presented.opening)
        try:
            await db.open()
            principal = presented.principal()
        except SessionEnded:
            await db.close()
            return await self._refuse_token(ctx, "SESSION_ENDED")
        except BaseException:
            await db.close()
            raise
        verified = presented.opening.verified
        assert verified is not None  # set by the opening that just succeeded
        return principal, db, verified

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS or _is_static_asset(scope):
            await self.app(scope, receive, send)
            return
        meta: RequestMeta = scope.get("state", {}).get(REQUEST_META) or RequestMeta(
            request_id="unknown"
        )
        token = bearer_token(scope)
        if token is None:
            await (await self._anonymous(scope, meta))(scope, receive, send)
            return
        ctx = self.identity.context(meta)
        try:
            outcome = await self._check(ctx, token)
        except Exception as exc:
            log.error("authentication_failed", **describe_exception(exc))
            outcome = (
                unavailable(meta.request_id)
                if scope["path"] == "/graphql"
                else oauth_error(503, "temporarily_unavailable", "Retry shortly.", RETRY_AFTER)
            )
        if not isinstance(outcome, tuple):
            await outcome(scope, receive, send)
            return
        principal, db, verified = outcome
        state = scope.setdefault("state", {})
        state[PRINCIPAL], state[REQUEST_DATABASE], state[VERIFIED_SESSION] = (
            principal,
            db,
            verified,
        )
        try:
            await self.app(scope, receive, send)
        finally:
            await db.close()  # rolls back whatever the handler did not commit

    async def _anonymous(self, scope: Scope, meta: RequestMeta) -> Response:
        """A request without a token: the static console page for a browser, 401 for
        anything else, 429 past the anonymous limit. Nothing executes and nothing is
        written, except one security event when an address first passes the limit."""
        address = meta.client_ip or "unknown"
        retry_after = await self.identity.limits.anonymous_retry_after(address)
        if retry_after is not None:
            if address not in self._reported:
                self._reported[address] = True
                ctx = self.identity.context(meta)
                ctx.record(SecurityEvent.ANONYMOUS_RATE_LIMITED, Outcome.DENIED, reason="ANONYMOUS")
                try:
                    await flush_events(ctx)
                except Exception as exc:
                    log.warning("security_event_not_recorded", **describe_exception(exc))
            return rate_limited(retry_after)
        if self.console_page and _wants_console_page(scope):
            return HTMLResponse(self.console_page)
        return oauth_error(
            401,
            "invalid_token",
            "A bearer access token is required.",
            {"WWW-Authenticate": CHALLENGE},
        )
