"""The analyst console's session cookie and the request-forgery rules that guard it.

The browser holds one cookie, ``__Host-phigate-console``: the session's id and secret,
HttpOnly (no script reads it), Secure, SameSite=Strict, path ``/``, no Domain (the
``__Host-`` prefix makes the browser enforce the last three). The value is what an
access token's ``sid`` and ``ssk`` claims carry: the database checks it against the
session row on every request (phigate.begin_request), so logout, an administrator's
revocation, the idle and absolute limits and a disabled account end a console session
exactly as they end a token's, on every gateway process.

A cookie travels with every request the browser makes to the origin, including ones a
hostile page triggers. So it is honoured only on requests that prove they come from the
console's own script: the custom header ``X-Phigate-Console`` (a cross-site form cannot
send one, and a cross-site ``fetch`` that tries needs a CORS preflight phigate never
grants), ``Sec-Fetch-Site: same-origin`` when the browser sends it, and, for anything
but GET, an ``Origin`` equal to the gateway's own.
"""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass

from starlette.types import Scope

COOKIE = "__Host-phigate-console"
CONSOLE_HEADER = b"x-phigate-console"
SECRET_LENGTH = 43  # secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class CookieSession:
    session_id: uuid.UUID
    secret: str

    @property
    def value(self) -> str:
        return f"{self.session_id}.{self.secret}"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def cookie_values(scope: Scope, name: str) -> list[str]:
    """Every value the request's Cookie header(s) give the name. Split on ``;`` only, as
    browsers send them, each pair at its first ``=``, the name matched exactly: a cookie
    whose value merely contains ``name=…`` (one a sibling domain could plant) is another
    cookie, and an unrelated cookie that is not RFC 6265 clean spoils nothing."""
    values = []
    for key, raw in scope.get("headers", ()):
        if key != b"cookie":
            continue
        for pair in raw.decode("latin-1").split(";"):
            found, separator, value = pair.strip().partition("=")
            if separator and found == name:
                values.append(value.strip())
    return values


def read_cookie(scope: Scope) -> CookieSession | None:
    """The console session the request's cookie names, or None: absent, malformed or
    present more than once (which one would be the session is not for us to guess). A
    malformed cookie is no cookie, never an error that echoes it."""
    values = cookie_values(scope, COOKIE)
    if len(values) != 1:
        return None
    session, _, secret = values[0].partition(".")
    if len(secret) != SECRET_LENGTH or not secret.replace("-", "").replace("_", "").isalnum():
        return None
    try:
        return CookieSession(uuid.UUID(session), secret)
    except ValueError:
        return None


def set_cookie_header(session: CookieSession, *, max_age: int) -> str:
    return f"{COOKIE}={session.value}; Path=/; Max-Age={max_age}; Secure; HttpOnly; SameSite=Strict"


def clear_cookie_header() -> str:
    return f"{COOKIE}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict"


def own_origin(scope: Scope) -> str | None:
    """The origin the browser addressed: the request's scheme and Host header (behind a
    proxy, uvicorn's proxy headers give the scheme the browser used)."""
    host = _header(scope, b"host")
    if not host:
        return None
    scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
    return f"{scheme}://{host.lower()}"


def secure_transport(scope: Scope) -> bool:
    """Whether a Secure cookie can reach the browser: over TLS, or on the loopback
    address, which browsers treat as a secure context. Over plain HTTP on any other
    host the browser would drop the cookie, and a session cookie must not cross a
    network in the clear anyway: the console then refuses to sign in."""
    if scope.get("scheme") in ("https", "wss"):
        return True
    host = (_header(scope, b"host") or "").lower()
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def forgery_problem(scope: Scope) -> str | None:
    """Why a cookie-bearing request cannot be the console's own, or None."""
    if _header(scope, CONSOLE_HEADER) != "1":
        return "CONSOLE_HEADER_MISSING"
    site = _header(scope, b"sec-fetch-site")
    if site is not None and site != "same-origin":
        return "CROSS_SITE"
    origin = _header(scope, b"origin")
    # Browsers send Origin with every POST and DELETE; with a GET, only cross-origin.
    needs_origin = scope["method"] not in ("GET", "HEAD") or origin is not None
    if needs_origin and (origin is None or origin.lower() != own_origin(scope)):
        return "ORIGIN_MISMATCH"
    return None
