"""The analyst console's session cookie and the request-forgery rules that guard it.

The browser holds one cookie, ``__Host-phigate-console``: the session's id and secret,
HttpOnly (no script reads it), Secure, SameSite=Strict, path ``/``, no Domain (the
``__Host-`` prefix makes the browser enforce the last three). The value is what an
access token's ``sid`` and ``ssk`` claims carry: the database checks it against the
session row on every request (phigate.begin_request), so logout, an administrator's
revocation, the idle and absolute limits and a disabled account end a console session
exactly as they end a token's, on every gateway process.

The value is signed (HMAC-SHA-256 under a key derived from the blind-index key, so every
gateway process shares it) over the session id, the secret and whose session it is: a
made-up or altered cookie is refused in memory, before any database work, and the
person a genuine cookie names is known before the database is asked, so the request is
counted against that person's budget like a token's.

A cookie travels with every request the browser makes to the origin, including ones a
hostile page triggers. So it is honoured only on requests that prove they come from the
console's own script: the custom header ``X-Phigate-Console`` (a cross-site form cannot
send one, and a cross-site ``fetch`` that tries needs a CORS preflight phigate never
grants), ``Sec-Fetch-Site: same-origin`` when the browser sends it, and, for anything
but GET, an ``Origin`` equal to the gateway's own.
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
import re
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
    actor: str  # whose session: a user id, or an identity provider's "oidc:<subject>"


class CookieSigner:
    """Signs and checks console cookies, with a key every gateway process derives alike
    (graph/http/app.py: from the blind-index key, under a label of its own), so no
    process needs to have seen the sign-in to check a cookie."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, session: uuid.UUID, secret: str, actor: str) -> str:
        message = f"{session}\x00{secret}\x00{actor}".encode()
        digest = hmac.digest(self._key, message, "sha256")
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def value(self, session: CookieSession) -> str:
        actor = base64.urlsafe_b64encode(session.actor.encode()).rstrip(b"=").decode()
        mac = self._mac(session.session_id, session.secret, session.actor)
        return f"{session.session_id}.{session.secret}.{actor}.{mac}"

    def read(self, value: str) -> CookieSession | None:
        parts = value.split(".")
        if len(parts) != 4 or not all(_URLSAFE.fullmatch(part) for part in parts[1:]):
            return None
        raw_session, secret, raw_actor, mac = parts
        if len(secret) != SECRET_LENGTH or len(raw_actor) > 200:
            return None
        try:
            session = uuid.UUID(raw_session)
            actor = base64.urlsafe_b64decode(raw_actor + "=" * (-len(raw_actor) % 4)).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        if not hmac.compare_digest(mac, self._mac(session, secret, actor)):
            return None
        return CookieSession(session, secret, actor)


_URLSAFE = re.compile(r"[A-Za-z0-9_-]+")


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


def read_cookie(scope: Scope, signer: CookieSigner) -> CookieSession | None:
    """The console session the request's cookie names, or None: absent, malformed, not
    signed by us, or present more than once (which one would be the session is not for
    us to guess). A bad cookie is no cookie, never an error that echoes it."""
    values = cookie_values(scope, COOKIE)
    if len(values) != 1:
        return None
    return signer.read(values[0])


def set_cookie_header(value: str, *, max_age: int) -> str:
    return f"{COOKIE}={value}; Path=/; Max-Age={max_age}; Secure; HttpOnly; SameSite=Strict"


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
