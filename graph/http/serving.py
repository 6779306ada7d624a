"""How `phigate serve` meets the network: TLS 1.2 at least (1.3 preferred: OpenSSL
negotiates the highest both sides speak), forward-secret AEAD ciphers only, no
compression; and a deadline for every request's headers, so slow clients cannot hold a
worker's connections."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import uuid
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from graph.http.middleware import API_CSP, SecurityHeadersMiddleware

# TLS 1.2 suites; TLS 1.3 suites are all AEAD and configured by OpenSSL separately.
MODERN_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!SHA1:!DSS:!RSA+AES"

HEADER_TIMEOUT_VARIABLE = "PHIGATE_HEADER_TIMEOUT_SECONDS"
# The request line and headers together (nginx's default buffers hold 32 KiB; Node's 16).
# uvicorn's httptools protocol sets no limit of its own: a client could stream headers
# into a worker's memory for as long as the deadline lets it.
MAX_HEADER_BYTES = 64 * 1024


class HeadersTooLarge(Exception):
    pass


def tls_context(config: Any, default_factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """uvicorn's ssl_context_factory: its context from the certificate and key, made
    strict. Module-level, so worker processes can import it."""
    context = default_factory()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.set_ciphers(MODERN_CIPHERS)
    return context


class CoalescedWrites:
    """A connection's transport, which sends a response's head and body in one write.

    uvicorn writes the status line and headers when the application starts its
    response, and the body in a second write: two system calls (and two TCP segments)
    where one does, for every response. Here a write is held until the next write, which
    goes out joined with it, or until the event loop's current pass ends, whichever
    comes first: at most one write (the head) is ever held, never past the pass that
    made it, so nothing is delayed and back-pressure is the transport's own. Everything
    but writing and closing is the transport's."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def write(self, data: bytes) -> None:
        held = self._held
        if held is None:
            self._held = data
            self._loop.call_soon(self.flush)
        else:
            self._held = None
            self._transport.write(b"".join((held, data)))

    def flush(self) -> None:
        held, self._held = self._held, None
        # The connection may have been lost in this pass before the flush ran: uvloop's
        # transport raises on a write after its handle closed (asyncio's drops it).
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def writelines(self, chunks: Any) -> None:
        self.write(b"".join(chunks))

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + len(self._held or b"")

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()


class DeadlineProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol (httptools), with a deadline for the headers: from the
    moment a connection opens, or a kept-alive connection starts its next request, the
    client has PHIGATE_HEADER_TIMEOUT_SECONDS to finish sending them, or the connection
    is closed. uvicorn closes idle kept-alive connections itself; the body's deadline is
    the request guard's (graph/http/middleware.py). Worker processes import it by name, and
    read the deadline from the environment `phigate serve` validated."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = float(os.environ.get(HEADER_TIMEOUT_VARIABLE) or 10)
        self.header_deadline: asyncio.TimerHandle | None = None
        self.header_bytes = 0
        self.headers_too_large = False

    def _arm(self) -> None:
        if self.header_deadline is None:
            self.header_deadline = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self.header_deadline is not None:
            self.header_deadline.cancel()
            self.header_deadline = None

    def _too_slow(self) -> None:
        self.header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescedWrites(transport, self.loop))  # type: ignore[arg-type]
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.header_bytes = 0
        self._arm()

    def _count(self, size: int) -> None:
        self.header_bytes += size
        if self.header_bytes > MAX_HEADER_BYTES:
            # Raised inside the parser's callback: uvicorn answers through
            # send_400_response below and closes the connection.
            self.headers_too_large = True
            raise HeadersTooLarge

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value))
        super().on_header(name, value)

    def send_400_response(self, msg: str) -> None:
        """A request the parser refused (malformed, or its headers too large): the usual
        JSON error with a request id and the security headers, then the connection is
        closed."""
        self._disarm()
        status, message = (
            (431, f"The request line and headers must be at most {MAX_HEADER_BYTES} bytes.")
            if self.headers_too_large
            else (400, "The request is not valid HTTP/1.1.")
        )
        request_id = uuid.uuid4().hex
        body = json.dumps(
            {
                "errors": [
                    {
                        "message": message,
                        "extensions": {"code": "BAD_REQUEST", "requestId": request_id},
                    }
                ]
            }
        ).encode()
        reason = "Request Header Fields Too Large" if status == 431 else "Bad Request"
        headers = {
            **SecurityHeadersMiddleware.HEADERS,
            "Content-Security-Policy": API_CSP,
            "X-Request-ID": request_id,
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
            "Connection": "close",
        }
        head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in headers.items()
        )
        self.transport.write(head.encode("latin-1") + b"\r\n" + body)
        self.transport.close()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
