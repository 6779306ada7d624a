"""Pure ASGI middleware (contextvars set here reach the handlers, unlike with
BaseHTTPMiddleware)."""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import structlog
from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graph.errors import INTERNAL_ERROR, INTERNAL_MESSAGE
from graph.http.responses import database_unavailable, request_error, unavailable
from graph.logs import describe_exception
from resolvers.context import RequestMeta

log = structlog.get_logger("phigate.http")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
REQUEST_META = "phigate.request_meta"


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


class RequestContextMiddleware:
    """Gives every request an id (the caller's X-Request-ID when well-formed), echoes
    it, binds it for logging and writes one line per request: never the query string,
    the body or the variables."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = header(scope, b"x-request-id")
        request_id = offered if offered and _REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex
        client = scope.get("client")
        user_agent = header(scope, b"user-agent")
        scope.setdefault("state", {})[REQUEST_META] = RequestMeta(
            request_id=request_id,
            client_ip=client[0] if client else None,
            user_agent=user_agent[:256] if user_agent else None,
        )
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500
        responded = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            # Whatever layer failed, the caller gets the usual JSON error with the
            # request id (and, from the middleware outside this one, the security
            # headers); the log gets the exception's type and place, never its text.
            log.error("request_failed", **describe_exception(exc))
            if not responded:
                answer = (
                    unavailable(request_id)
                    if database_unavailable(exc)
                    else request_error(500, INTERNAL_MESSAGE, request_id, code=INTERNAL_ERROR)
                )
                await answer(scope, receive, send_with_id)
        finally:
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
                client_ip=client[0] if client else None,
            )
            structlog.contextvars.clear_contextvars()


# API responses are data: nothing in them may load, run or be framed.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# Any HTML page phigate serves (the console's): scripts and styles from phigate itself,
# nothing inline (graph/http/console/page.py sets the same on its page).
HTML_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none';"
    " form-action 'none'"
)


class SecurityHeadersMiddleware:
    """Headers every response carries. Responses may hold PHI, so none is cached."""

    HEADERS = {
        # Browsers honour it over HTTPS only; sent always so a TLS front keeps it.
        "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
    }

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.HEADERS.items():
                    headers.setdefault(name, value)
                html = headers.get("content-type", "").startswith("text/html")
                headers.setdefault("Content-Security-Policy", HTML_CSP if html else API_CSP)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _refusal(scope: Scope, status: int, message: str) -> Response:
    meta = scope.get("state", {}).get(REQUEST_META)
    return request_error(status, message, meta.request_id if meta else "unknown")


class RequestGuardMiddleware:
    """Before the GraphQL layer parses anything: bodies over the limit are refused (413),
    whether or not they declare their length, and GraphQL POSTs must be JSON (415), which
    a cross-site form or a `text/plain` fetch cannot send without a CORS preflight."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, body_timeout: float = 30) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        if scope["path"] == "/graphql":
            media = (header(scope, b"content-type") or "").split(";")[0].strip().lower()
            if media != "application/json":
                await _refusal(scope, 415, "GraphQL requests must be POSTed as application/json.")(
                    scope, receive, send
                )
                return
        declared = header(scope, b"content-length")

        def too_large() -> Response:  # built only when sent: most requests are not
            return _refusal(
                scope, 413, f"The request body must be at most {self.max_body_bytes} bytes."
            )

        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await too_large()(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        try:
            # A body trickled in a byte at a time would hold the connection (and the
            # request's slot) for as long as the client liked.
            async with asyncio.timeout(self.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_body_bytes:
                        await too_large()(scope, receive, send)
                        return
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            too_slow = _refusal(
                scope, 408, f"The request body must arrive within {self.body_timeout:g} seconds."
            )
            too_slow.headers["Connection"] = "close"
            await too_slow(scope, receive, send)
            return
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
