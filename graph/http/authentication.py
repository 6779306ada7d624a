"""Authentication for everything but the public endpoints: a bearer access token,
verified and checked for a live session (or an active client) on every request."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from cachetools import TTLCache
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from db.sessions import (
    NO_TOUCH,
    SessionEnded,
    SessionOpening,
    VerifiedSession,
)
from db.unit_of_work import RequestDatabase
from domain.principals import Principal
from domain.security_events import Outcome, SecurityEvent
from graph.http.console.cookie import (
    CookieSession,
    CookieSigner,
    clear_cookie_header,
    forgery_problem,
    read_cookie,
)
from graph.http.middleware import REQUEST_META, header
from graph.http.responses import NO_STORE, RETRY_AFTER, oauth_error, rate_limited, unavailable
from graph.identity import Identity
from graph.logs import describe_exception
from resolvers.auth import AuthContext, Presented, authenticate, flush_events
from resolvers.context import RequestMeta
from resolvers.tokens import TokenRejected

log = structlog.get_logger("phigate.authentication")
PRINCIPAL = "phigate.principal"
# The request's database connection, its transaction opened by the session check, and
# what that check established (row scope, open break-glass episodes).
REQUEST_DATABASE = "phigate.request_database"
VERIFIED_SESSION = "phigate.verified_session"
# A request whose session check is deferred to the statement of a planned read (see
# Deferred); absent when the check has run (or the request has no session).
DEFERRED = "phigate.deferred_session"
# How long a session check's findings are kept as the prediction of the next request's
# (only a prediction: the statement that relies on it checks it again).
PREDICTION_SECONDS = 60
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


CONSOLE_PAGE = "/console"
# The console's files, and its sign-in at an external identity provider (the browser
# arrives there with no session: that is what it comes to get).
CONSOLE_FILES = ("/console/static/", "/console/assets/", "/console/oidc/")
# What a console cookie may authenticate: the GraphQL endpoint and the console's own
# session and library reads. Anything else ignores the cookie.
CONSOLE_API = frozenset({"/graphql", "/console/session", "/console/operations"})


def _console_api(scope: Scope) -> bool:
    """Whether a console cookie may authenticate the request. GraphQL over POST only:
    the console never sends a query in a URL (where proxies and history keep it)."""
    path = scope["path"]
    if path == "/graphql":
        return scope["method"] == "POST"
    return path in CONSOLE_API


def _is_public(scope: Scope) -> bool:
    """The endpoints anyone may call: health, sign-in and token endpoints, the console's
    page and its static files (no data, no schema), and the console's sign-in."""
    path, method = scope["path"], scope["method"]
    if path in PUBLIC_PATHS:
        return True
    if method in ("GET", "HEAD") and (path == CONSOLE_PAGE or path.startswith(CONSOLE_FILES)):
        return True
    return path == "/console/session" and method == "POST"


def _wants_console_page(scope: Scope) -> bool:
    """A browser opening /graphql: sent to the console, whatever it holds. The request
    never reaches the GraphQL view, so whatever its query string holds (in whatever
    encoding) executes nothing."""
    return (
        scope["method"] == "GET"
        and scope["path"] == "/graphql"
        and "text/html" in (header(scope, b"accept") or "")
    )


def _admit(
    state: dict[str, Any], outcome: tuple[Principal, RequestDatabase, VerifiedSession]
) -> None:
    """The checked caller, its open transaction and what the check found, for the app."""
    state[PRINCIPAL], state[REQUEST_DATABASE], state[VERIFIED_SESSION] = outcome


@dataclass(frozen=True, slots=True)
class Deferred:
    """A token's request (a signed-in person's, an OAuth2 client's, an identity provider's)
    to POST /graphql whose session check is left to the statement that reads and audits
    (one round trip instead of BEGIN, the check, the read and COMMIT). The token
    verified and the rate limit counted as for any request; ``expected`` is what the
    last check of this session found, and only a prediction: the statement checks the
    session again, compares what it finds with ``expected`` and reads nothing unless
    they agree (``db.audit.read_and_audit`` with ``checked``). Until a statement has
    done so, nobody may rely on ``principal``. Anything else the request does runs after
    ``open``, the usual check (which refuses an ended session as every request's does)."""

    presented: Presented
    expected: VerifiedSession
    principal: Principal
    # The connection for the statement that checks the session itself; no transaction.
    db: RequestDatabase
    open: Callable[[Scope], Awaitable[Response | None]]


class BearerAuthentication:
    def __init__(self, app: ASGIApp, *, identity: Identity, signer: CookieSigner) -> None:
        self.app = app
        self.identity = identity
        self.signer = signer
        # Addresses already reported over the anonymous limit, for about a window.
        self._reported: TTLCache[str, bool] = TTLCache(maxsize=10_000, ttl=60)
        # Console sessions this process has seen the database refuse (signed out, revoked,
        # expired): their cookies are refused in memory, against the address, and never
        # again charged to the person they name (a lost laptop's cookie must not spend
        # its owner's budget).
        self._ended_sessions: TTLCache[uuid.UUID, bool] = TTLCache(maxsize=100_000, ttl=13 * 3600)
        # What the last check of each token's session found: the prediction a deferred
        # check (Deferred) is made against.
        self._found: TTLCache[uuid.UUID, VerifiedSession] = TTLCache(
            maxsize=100_000, ttl=PREDICTION_SECONDS
        )

    async def _record_anonymous_refusal(
        self, ctx: AuthContext, event: SecurityEvent, reason: str
    ) -> Response | None:
        """Record a refusal of a caller nobody vouches for, or answer 429 past the
        address's anonymous limit: a flood of forged credentials must not become a flood
        of audit writes."""
        address = ctx.meta.client_ip or "unknown"
        retry_after = await self.identity.limits.anonymous_retry_after(address)
        if retry_after is not None:
            return rate_limited(retry_after)
        ctx.record(event, Outcome.DENIED, reason=reason)
        await flush_events(ctx)
        return None

    async def _refuse_token(self, ctx: AuthContext, reason: str) -> Response:
        # An invalid token is an anonymous request: counted like one, so a flood of
        # forged tokens cannot become a flood of audit writes.
        limited = await self._record_anonymous_refusal(
            ctx, SecurityEvent.ACCESS_TOKEN_REJECTED, reason[:60]
        )
        if limited is not None:
            return limited
        return oauth_error(
            401,
            "invalid_token",
            "The access token is invalid or has expired.",
            {"WWW-Authenticate": f'{CHALLENGE}, error="invalid_token"'},
        )

    async def _check(
        self, scope: Scope, ctx: AuthContext, token: str
    ) -> tuple[Principal, RequestDatabase, VerifiedSession] | Deferred | Response:
        try:
            presented = await authenticate(ctx, token)
        except TokenRejected as rejected:
            return await self._refuse_token(ctx, rejected.reason.upper())
        assert presented.claimed is not None  # a token names its caller
        limited = await self._rate_limited(ctx, presented.claimed.actor_id)
        if limited is not None:
            return limited
        expected = self._deferrable(scope, presented)
        if expected is None:
            return await self._open_database(ctx, presented)

        async def open_(scope: Scope) -> Response | None:
            return await self._open_deferred(scope, ctx, presented)

        return Deferred(
            presented,
            expected,
            presented.principal_of(expected),
            RequestDatabase(self.identity.engine),
            open_,
        )

    def _deferrable(self, scope: Scope, presented: Presented) -> VerifiedSession | None:
        """What the session's last check found, when this request's check may be left to
        the statement of a planned read: a token's (a signed-in person's, an OAuth2
        client's, an identity provider's; not the console's cookie) on POST /graphql,
        and a last check that found that caller, with no break-glass episode open. (A
        request that would open an episode does so on the full path, after the usual
        check: a plan never does.)"""
        if scope["path"] != "/graphql" or scope["method"] != "POST" or presented.claimed is None:
            return None
        expected = self._found.get(presented.opening.session_id)
        if (
            expected is None
            or expected.subject_kind not in ("USER", "SERVICE", "EXTERNAL")
            or expected.actor != presented.claimed.actor_id
            or expected.episodes
        ):
            return None
        return expected

    async def _rate_limited(self, ctx: AuthContext, actor: str | None) -> Response | None:
        # The caller's rate limit before the request's connection is taken: counting may
        # need a connection of its own, and a request holding one while waiting for
        # another can starve the pool (every connection held, every holder waiting).
        if actor is None:
            return None
        retry_after = await self.identity.limits.retry_after(
            self.identity.limits.graphql, "caller", actor
        )
        if retry_after is None:
            return None
        ctx.record(SecurityEvent.RATE_LIMITED, Outcome.DENIED, actor_id=actor, reason="GRAPHQL")
        await flush_events(ctx)
        return rate_limited(retry_after)

    async def _open(
        self, ctx: AuthContext, presented: Presented, actor: str | None
    ) -> tuple[Principal, RequestDatabase, VerifiedSession] | Response:
        """The caller and the request's open transaction, or the response that refuses
        them. The transaction begins with the database's own check of the session,
        which also sets the row context row-level security reads."""
        limited = await self._rate_limited(ctx, actor)
        if limited is not None:
            return limited
        return await self._open_database(ctx, presented)

    async def _open_database(
        self, ctx: AuthContext, presented: Presented
    ) -> tuple[Principal, RequestDatabase, VerifiedSession] | Response:
        session_id = presented.opening.session_id
        db = RequestDatabase(self.identity.engine, opening=presented.opening)
        try:
            await db.open()
            principal = presented.principal()
        except SessionEnded:
            await db.close()
            self._found.pop(session_id, None)
            if presented.claimed is None:
                self._ended_sessions[session_id] = True
                return await self._refuse_cookie(ctx, "CONSOLE_SESSION_ENDED")
            return await self._refuse_token(ctx, "SESSION_ENDED")
        except BaseException:
            await db.close()
            raise
        verified = presented.opening.verified
        assert verified is not None  # set by the opening that just succeeded
        if presented.claimed is not None:
            self._found[session_id] = verified
        return principal, db, verified

    async def _open_deferred(
        self, scope: Scope, ctx: AuthContext, presented: Presented
    ) -> Response | None:
        """The usual check of a deferred request's session (its rate limit is counted
        already): the request's state gets the caller and its open transaction, or the
        response that refuses it is returned."""
        try:
            outcome = await self._open_database(ctx, presented)
        except Exception as exc:
            log.error("authentication_failed", **describe_exception(exc))
            return unavailable(ctx.meta.request_id)
        if not isinstance(outcome, tuple):
            return outcome
        state = scope.setdefault("state", {})
        state.pop(DEFERRED, None)
        _admit(state, outcome)
        return None

    async def _refuse_cookie(self, ctx: AuthContext, reason: str) -> Response:
        """A console cookie that names no live session (signed out, idle, expired,
        revoked): 401, the cookie cleared, the page goes back to sign-in."""
        limited = await self._record_anonymous_refusal(
            ctx, SecurityEvent.ACCESS_TOKEN_REJECTED, reason
        )
        if limited is not None:
            return limited
        response = oauth_error(
            401, "session_ended", "The console session has ended; sign in again."
        )
        response.headers["Set-Cookie"] = clear_cookie_header()
        return response

    async def _console(
        self, scope: Scope, ctx: AuthContext, cookie: CookieSession
    ) -> tuple[Principal, RequestDatabase, VerifiedSession] | Response:
        """A request authenticated by the console cookie, or the refusal of a request
        that carries the cookie without proving it comes from the console's own page
        (audited: it is what a cross-site request forgery looks like)."""
        if cookie.session_id in self._ended_sessions:
            return await self._refuse_cookie(ctx, "CONSOLE_SESSION_ENDED")
        problem = forgery_problem(scope)
        if problem is None and header(scope, b"x-break-glass-reason") is not None:
            problem = "BREAK_GLASS_IN_CONSOLE"
        if problem is not None:
            limited = await self._record_anonymous_refusal(
                ctx, SecurityEvent.CONSOLE_REQUEST_REFUSED, problem
            )
            if limited is not None:
                return limited
            message = (
                "Break-glass access is not available in the console; use the API."
                if problem == "BREAK_GLASS_IN_CONSOLE"
                else "A console session is honoured only on requests from the console's own"
                " page (same origin, with the X-Phigate-Console header)."
            )
            return JSONResponse(
                {"error": "forbidden", "error_description": message, "reason": problem},
                status_code=403,
                headers=NO_STORE,
            )
        # The page asking how long its session has left is not activity: it must not
        # keep an idle session alive.
        polling = scope["path"] == "/console/session" and scope["method"] == "GET"
        opening = SessionOpening(
            cookie.session_id,
            cookie.secret,
            idle=self.identity.config.session.idle,
            touch=NO_TOUCH if polling else None,
            console=True,
        )
        # The cookie is signed: whose session it names is known before the database is
        # asked, and the request is counted against that person, like a token's.
        return await self._open(ctx, Presented(opening, None, source="console"), cookie.actor)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _is_public(scope):
            await self.app(scope, receive, send)
            return
        token = bearer_token(scope)
        if token is None and _wants_console_page(scope):
            await RedirectResponse(CONSOLE_PAGE, status_code=303)(scope, receive, send)
            return
        meta: RequestMeta = scope.get("state", {}).get(REQUEST_META) or RequestMeta(
            request_id="unknown"
        )
        cookie = read_cookie(scope, self.signer) if token is None and _console_api(scope) else None
        console = cookie is not None
        if token is None and not console:
            await (await self._anonymous(scope, meta))(scope, receive, send)
            return
        ctx = self.identity.context(meta)
        try:
            if console:
                assert cookie is not None
                outcome = await self._console(scope, ctx, cookie)
            else:
                assert token is not None
                outcome = await self._check(scope, ctx, token)
        except Exception as exc:
            log.error("authentication_failed", **describe_exception(exc))
            outcome = (
                unavailable(meta.request_id)
                if scope["path"] == "/graphql"
                else oauth_error(503, "temporarily_unavailable", "Retry shortly.", RETRY_AFTER)
            )
        if isinstance(outcome, Response):
            await outcome(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        if isinstance(outcome, Deferred):
            state[DEFERRED] = outcome
        else:
            _admit(state, outcome)
        try:
            await self.app(scope, receive, send)
        finally:
            if isinstance(outcome, Deferred):
                await outcome.db.close()
            # The request's transaction (a deferred request's, if its check ran): rolls
            # back whatever the handler did not commit.
            opened = state.get(REQUEST_DATABASE)
            if opened is not None:
                await opened.close()

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
        return oauth_error(
            401,
            "invalid_token",
            "A bearer access token is required.",
            {"WWW-Authenticate": CHALLENGE},
        )
