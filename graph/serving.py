"""TLS for `phigate serve`: TLS 1.2 at least (1.3 preferred: OpenSSL negotiates the
highest both sides speak), forward-secret AEAD ciphers only, no compression."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

# TLS 1.2 suites; TLS 1.3 suites are all AEAD and configured by OpenSSL separately.
MODERN_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!SHA1:!DSS:!RSA+AES"


def tls_context(config: Any, default_factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """uvicorn's ssl_context_factory: its context from the certificate and key, made
    strict. Module-level, so worker processes can import it."""
    context = default_factory()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.set_ciphers(MODERN_CIPHERS)
    return context
