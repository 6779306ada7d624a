"""How `phigate serve` meets the network: TLS 1.2 at least (1.3 preferred: OpenSSL
negotiates the highest both sides speak), forward-secret AEAD ciphers only, no
compression; and a deadline for every request's headers, so slow clients cannot hold a
worker's connections."""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# TLS 1.2 suites; TLS 1.3 suites are all AEAD and configured by OpenSSL separately.
MODERN_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!SHA1:!DSS:!RSA+AES"

HEADER_TIMEOUT_VARIABLE = "PHIGATE_HEADER_TIMEOUT_SECONDS"


def tls_context(config: Any, default_factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """uvicorn's ssl_context_factory: its context from the certificate and key, made
    strict. Module-level, so worker processes can import it."""
    context = default_factory()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.set_ciphers(MODERN_CIPHERS)
    return context


class DeadlineProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol (httptools), with a deadline for the headers: from the
    moment a connection opens, or a kept-alive connection starts its next request, the
    client has PHIGATE_HEADER_TIMEOUT_SECONDS to finish sending them, or the connection
    is closed. uvicorn closes idle kept-alive connections itself; the body's deadline is
    the request guard's (graph/middleware.py). Worker processes import it by name, and
    read the deadline from the environment `phigate serve` validated."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = float(os.environ.get(HEADER_TIMEOUT_VARIABLE) or 10)
        self.header_deadline: asyncio.TimerHandle | None = None

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
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
