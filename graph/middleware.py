"""Pure ASGI middleware (contextvars set here reach the handlers, unlike with
BaseHTTPMiddleware)."""

from __future__ import annotations

import re
import time
import uuid

import structlog
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
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


class SecurityHeadersMiddleware:
    """Headers every response carries. Responses may hold PHI, so none is cached."""

    HEADERS = {
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
            await send(message)

        await self.app(scope, receive, send_with_headers)
