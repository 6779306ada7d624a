"""Checklist C13 (authenticated by default): every route the app serves, in every method,
under alternate spellings of its path and every request form, without a token. Only
the documented allowlist answers; nothing executes and nothing is written (a refusal
may leave its security event, never an access entry)."""

from __future__ import annotations

import posixpath
from urllib.parse import unquote

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from graph.settings import Settings
from tests.conftest import FAST_HASHING, TEST_KEYS

# (method, path): what answers without a token, and what it may say.
ALLOWLIST = {
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/.well-known/jwks.json"),
    # These authenticate by what they are sent (credentials, a refresh token): with none,
    # they refuse in OAuth2's shape.
    ("POST", "/auth/login"),
    ("POST", "/auth/refresh"),
    ("POST", "/oauth/token"),
    # The console's page and its own files: no data, no schema (its sign-in, POST
    # /console/session, refuses what does not come from the page).
    ("GET", "/console"),
}
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
MUTATION = (
    'mutation { patientCreate(input: {givenName: "Alpha", familyName: "Synthetic-Walk",'
    ' dateOfBirth: "1990-01-01"}) { patient { id } } }'
)
QUERY = "{ patients(first: 1) { edges { node { givenName } } } __schema { types { name } } }"


@pytest.fixture
def settings() -> Settings:
    # The walk is a few hundred anonymous requests from one address: lift the anonymous
    # limit so each answer is the route's own, not 429.
    return Settings(**TEST_KEYS, **FAST_HASHING, rate_limit_anonymous="100000/minute")


def spellings(path: str) -> list[str]:
    """The path, and the ways a router or proxy might be fooled into serving it."""
    head, _, tail = path.rpartition("/")
    encoded = "".join(f"%{ord(c):02X}" if c.isalpha() and i == 0 else c for i, c in enumerate(tail))
    return [
        path,
        f"{path}/",
        path.upper(),
        f"{head}/{encoded}",
        f"/{path}",
        f"/.{path}",
        f"{path}%00",
        f"{path};.css",
        f"{path}%2F",
        f"{head}/%2e/{tail}",
    ]


def canonical(path: str) -> str:
    """The route a spelling reaches (decoded, dot segments and doubled slashes gone)."""
    decoded = posixpath.normpath(unquote(path.split(";")[0]))
    return "/" + decoded.lstrip("/")


def bodies() -> list[dict]:
    return [
        {},
        {"json": {"query": QUERY}},
        {"json": {"query": MUTATION}},
        {"params": {"query": QUERY}},
        {"content": QUERY, "headers": {"content-type": "text/plain"}},
        {"data": {"query": MUTATION}},
        {"files": {"operations": (None, f'{{"query": "{QUERY}"}}')}},
    ]


def served_paths(app: Starlette) -> list[str]:
    paths = []
    for route in app.routes:
        assert isinstance(route, Route | Mount), f"unexpected route type {route!r}"
        paths.append(route.path)
    return paths


async def snapshot(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as connection:
        tables = (
            await connection.execute(
                text(
                    "SELECT schemaname || '.' || relname FROM pg_stat_user_tables"
                    " WHERE schemaname = 'phigate' AND relname NOT IN"
                    # Counting refused sign-ins is the point of a rate limit; the JWKS
                    # creates the first signing key when it is first asked for.
                    " ('rate_limits', 'signing_keys', 'gateway_instances')"
                )
            )
        ).scalars()
        counts = {}
        for table in tables:
            counts[table] = await connection.scalar(text(f"SELECT count(*) FROM {table}"))
        counts["access entries"] = await connection.scalar(
            text("SELECT count(*) FROM audit.events WHERE category = 'ACCESS'")
        )
        return counts


async def test_C13_nothing_answers_without_a_token_but_the_allowlist(
    app: Starlette, client: httpx.AsyncClient, admin_engine: AsyncEngine
) -> None:
    paths = served_paths(app)
    assert {"/graphql", "/health", "/auth/login", "/oauth/token"} <= set(paths)
    before = await snapshot(admin_engine)
    answered: set[tuple[str, str]] = set()
    sent = 0
    for path in paths:
        for spelled in spellings(path):
            for method in METHODS:
                for body in bodies() if method in {"POST", "PUT", "PATCH"} else [{}]:
                    response = await client.request(method, spelled, **body)
                    sent += 1
                    text_ = response.text
                    # No operation ran: no data, no schema, no record.
                    assert '"data"' not in text_ and "__Schema" not in text_, (method, spelled)
                    assert "Synthetic-Walk" not in text_
                    if response.status_code < 400:
                        answered.add((method, canonical(spelled)))
    # GET /graphql from a browser without a token: sent to the console (no query in it
    # runs), the one redirect outside the allowlist.
    page = await client.get(f"/graphql?query={QUERY}", headers={"accept": "text/html"})
    assert (page.status_code, page.headers["location"]) == (303, "/console")
    assert '"data"' not in page.text
    # What answered is exactly the allowlist (HEAD and OPTIONS of an allowed GET aside).
    allowed = ALLOWLIST | {("HEAD", p) for m, p in ALLOWLIST if m == "GET"}
    assert answered - allowed == set(), sorted(answered - allowed)
    assert {("GET", "/health"), ("GET", "/ready"), ("GET", "/.well-known/jwks.json")} <= answered
    after = await snapshot(admin_engine)
    assert after == before, {k: (before[k], after[k]) for k in after if before.get(k) != after[k]}
    assert sent > 500
