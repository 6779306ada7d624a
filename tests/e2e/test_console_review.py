"""Regression tests for the holes a review of the console found, over HTTP. Each failed
before its fix."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pyotp
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from domain.roles import Role
from graph.http.app import create_app, engine_of, identity_of
from graph.http.console.cookie import COOKIE
from graph.settings import Settings
from tests.conftest import FAST_HASHING, TEST_KEYS
from tests.e2e.test_console import CONSOLE, COUNTS, browser_like, code, fake_assets
from tests.identity import PASSWORD, issue_token, token_claims
from tests.identity import create_user as create_identity_user

ASK = {"X-Phigate-Console": "1"}


def make_app(app_target, tmp_path: Path, **overrides) -> Starlette:
    settings = Settings(
        **TEST_KEYS, **FAST_HASHING, console_assets=fake_assets(tmp_path / "assets"), **overrides
    )
    return create_app(settings, target=app_target)


@pytest.fixture
async def app(app_target, tmp_path: Path) -> AsyncIterator[Starlette]:
    application = make_app(app_target, tmp_path)
    yield application
    await engine_of(application).dispose()


async def _rate_limited_events(engine: AsyncEngine, actor_id: str) -> int:
    """RATE_LIMITED events recorded in someone's name."""
    async with engine.connect() as connection:
        return int(
            await connection.scalar(
                text(
                    "SELECT count(*) FROM audit.events WHERE action = 'RATE_LIMITED'"
                    " AND actor_id = :actor"
                ),
                {"actor": actor_id},
            )
        )


def cookie_from_token(token: str) -> str:
    """What anyone holding an access token can read out of it: its session's id and
    secret (a JWT's payload is encoded, not encrypted)."""
    claims = token_claims(token)
    return f"{claims['sid']}.{claims['ssk']}"


async def console_sign_in(app: Starlette, role: Role, username: str) -> tuple[str, str]:
    user_id, secret = await create_identity_user(identity_of(app), role, username=username)
    async with browser_like(app) as http:
        response = await http.post(
            "/console/session",
            json={"username": username, "password": PASSWORD, "totp": code(secret)},
            headers=CONSOLE,
        )
        assert response.status_code == 200, response.text
        return user_id, http.cookies[COOKIE]


async def test_a_token_s_session_secret_is_no_console_cookie(app: Starlette, seeded: int):
    """Found: an access token's `sid` and `ssk` claims, made into a cookie, read PHI and
    kept the session alive long after the token expired (nothing checked its signature
    or expiry on that path). A session now answers only the credential it was opened
    for."""
    _, secret = await create_identity_user(identity_of(app), Role.BILLING, username="t.rv.bill")
    async with browser_like(app) as http:
        login = await http.post(
            "/auth/login",
            json={"username": "t.rv.bill", "password": PASSWORD, "totp": pyotp.TOTP(secret).now()},
        )
        token = login.json()["access_token"]
        http.cookies.set(COOKIE, cookie_from_token(token))
        as_cookie = await http.post(
            "/graphql",
            json={"query": "{ patients(first: 1) { edges { node { mrn } } } }"},
            headers={**CONSOLE, "X-Purpose-Of-Use": "PAYMENT"},
        )
        assert as_cookie.status_code == 401
        assert (await http.get("/console/session", headers=ASK)).status_code == 401
        # The token itself still works: only the cookie route is closed.
        http.cookies.clear()
        as_token = await http.post(
            "/graphql",
            json={"query": "{ __typename }"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert as_token.status_code == 200


async def test_the_console_and_tokens_share_the_person_s_request_budget(app_target, tmp_path: Path):
    """Found: cookie requests were counted per session, a token's per person, so one
    person had several budgets."""
    app = make_app(app_target, tmp_path, rate_limit_graphql="3/minute")
    try:
        user_id, cookie = await console_sign_in(app, Role.ANALYST, "t.rv.budget")
        async with browser_like(app) as http:
            http.cookies.set(COOKIE, cookie)
            headers = {**CONSOLE, "X-Purpose-Of-Use": "RESEARCH"}
            statuses = [
                (
                    await http.post("/graphql", json={"query": "{ __typename }"}, headers=headers)
                ).status_code
                for _ in range(5)
            ]
        # Counted against the person the signed cookie names: three, then 429.
        assert statuses == [200, 200, 200, 429, 429]
        retry = await identity_of(app).limits.retry_after(
            identity_of(app).limits.graphql, "caller", user_id
        )
        assert retry is not None  # a token of the same person finds the budget spent
    finally:
        await engine_of(app).dispose()


async def test_made_up_cookies_cost_no_database_work_past_the_anonymous_limit(
    app_target, tmp_path: Path, admin_engine: AsyncEngine
):
    """Found: every made-up cookie wrote a rate-limit counter row and ran the session
    check, before and after the anonymous limit answered 429."""
    app = make_app(app_target, tmp_path, rate_limit_anonymous="2/minute")
    try:
        async with admin_engine.connect() as connection:
            before = await connection.scalar(text("SELECT count(*) FROM phigate.rate_limits"))
        async with browser_like(app) as http:
            statuses = []
            for _ in range(25):
                http.cookies.set(COOKIE, f"{uuid.uuid4()}.{'a' * 43}")
                statuses.append((await http.get("/console/session", headers=ASK)).status_code)
        assert statuses.count(429) >= 20
        async with admin_engine.connect() as connection:
            after = await connection.scalar(text("SELECT count(*) FROM phigate.rate_limits"))
        assert after == before
    finally:
        await engine_of(app).dispose()


async def test_a_cookie_inside_another_cookie_is_not_the_session(app: Starlette):
    """Found: the cookie parser split on whitespace too and kept the last duplicate, so a
    cookie any sibling domain could set (`t=x __Host-phigate-console=…`) replaced the
    victim's session, and an unrelated JSON-valued cookie hid it."""
    _, victim = await console_sign_in(app, Role.ANALYST, "t.rv.victim")
    _, attacker = await console_sign_in(app, Role.ANALYST, "t.rv.attacker")
    async with browser_like(app) as http:
        smuggled = await http.get(
            "/console/session",
            headers={**ASK, "Cookie": f"{COOKIE}={victim}; t=x {COOKIE}={attacker}"},
        )
        assert smuggled.json()["username"] == "t.rv.victim"
        json_first = await http.get(
            "/console/session",
            headers={**ASK, "Cookie": f'prefs={{"theme":"dark"}}; {COOKIE}={victim}'},
        )
        assert json_first.status_code == 200
        assert json_first.json()["username"] == "t.rv.victim"
        # Two cookies of the name: which is the session is not for the gateway to guess.
        twice = await http.get(
            "/console/session", headers={**ASK, "Cookie": f"{COOKIE}={victim}; {COOKIE}={attacker}"}
        )
        assert twice.status_code == 401


async def test_a_bearer_get_that_accepts_html_is_executed_not_redirected(app: Starlette):
    """Found: the redirect of browsers to the console caught token clients too."""
    token = await issue_token(identity_of(app), Role.ANALYST)
    async with browser_like(app) as http:
        response = await http.get(
            "/graphql",
            params={"query": "{ __typename }"},
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json, text/html;q=0.1",
            },
        )
    assert response.status_code == 200
    assert response.json() == {"data": {"__typename": "Query"}}


async def test_the_cookie_does_not_authenticate_a_query_in_a_url(app: Starlette, seeded: int):
    """Found: a cookie-authenticated GET /graphql?query= ran, though the console never
    puts a query in a URL (where proxies and history keep it)."""
    _, cookie = await console_sign_in(app, Role.ANALYST, "t.rv.get")
    async with browser_like(app) as http:
        http.cookies.set(COOKIE, cookie)
        response = await http.get(
            "/graphql", params={"query": COUNTS}, headers={**ASK, "X-Purpose-Of-Use": "RESEARCH"}
        )
    assert response.status_code == 401
    assert "deidentifiedCounts" not in response.text


async def test_the_page_without_assets_names_no_server_path(app_target, tmp_path: Path):
    secret_place = tmp_path / "hidden-place-name"
    app = create_app(
        Settings(**TEST_KEYS, **FAST_HASHING, console_assets=secret_place), target=app_target
    )
    try:
        async with browser_like(app) as http:
            page = await http.get("/console")
    finally:
        await engine_of(app).dispose()
    assert page.status_code == 503
    assert "hidden-place-name" not in page.text


@pytest.mark.parametrize(
    "path",
    [
        "/console/static/../cookie.py",
        "/console/static/..%2fcookie.py",
        "/console/static/%2e%2e/cookie.py",
        "/console/assets/../../pyproject.toml",
        "/console/assets/..%2f..%2fpyproject.toml",
    ],
)
async def test_the_static_mounts_do_not_escape(app: Starlette, path: str):
    async with browser_like(app) as http:
        response = await http.get(path)
    assert response.status_code in (400, 401, 404), (path, response.status_code)
    assert "read_cookie" not in response.text and "[tool" not in response.text


@pytest.mark.parametrize(
    "origin", ["null", "https://phigate.test.evil.example", "https://evil.example/phigate.test"]
)
async def test_look_alike_origins_are_refused(app: Starlette, origin: str):
    _, cookie = await console_sign_in(app, Role.ANALYST, f"t.rv.o{abs(hash(origin)) % 10**6}")
    async with browser_like(app) as http:
        http.cookies.set(COOKIE, cookie)
        response = await http.post(
            "/graphql",
            json={"query": "{ __typename }"},
            headers={"X-Phigate-Console": "1", "X-Purpose-Of-Use": "RESEARCH", "Origin": origin},
        )
    assert response.status_code == 403
    assert isinstance(response, httpx.Response)


async def test_a_made_up_secret_for_a_known_session_id_costs_the_person_nothing(
    app_target, tmp_path: Path, admin_engine: AsyncEngine
):
    """Found (second review): whose a console request was came from a cache keyed by the
    session id alone, before the database checked the secret, so anyone knowing a
    session id (it is in the audit trail) spent that person's budget and wrote rate-limit
    events in their name. The cookie is now signed over id, secret and person."""
    app = make_app(
        app_target, tmp_path, rate_limit_graphql="5/minute", rate_limit_anonymous="3/minute"
    )
    try:
        victim_id, cookie = await console_sign_in(app, Role.ANALYST, "t.rv.known")
        session_id = cookie.split(".")[0]
        headers = {**CONSOLE, "X-Purpose-Of-Use": "RESEARCH"}
        async with browser_like(app) as victim:
            victim.cookies.set(COOKIE, cookie)
            ok = await victim.post("/graphql", json={"query": "{ __typename }"}, headers=headers)
            assert ok.status_code == 200
        transport = httpx.ASGITransport(app=app, client=("198.51.100.66", 5555))
        async with httpx.AsyncClient(transport=transport, base_url="https://phigate.test") as evil:
            statuses = []
            for _ in range(20):
                made_up = cookie.split(".")
                made_up[1] = "b" * 43
                evil.cookies.set(COOKIE, ".".join(made_up))
                response = await evil.post(
                    "/graphql", json={"query": "{ __typename }"}, headers=headers
                )
                statuses.append(response.status_code)
        assert statuses.count(401) == 3 and statuses.count(429) == 17  # the address's limit
        async with browser_like(app) as victim:
            victim.cookies.set(COOKIE, cookie)
            still = await victim.post("/graphql", json={"query": "{ __typename }"}, headers=headers)
        assert still.status_code == 200
        assert await _rate_limited_events(admin_engine, victim_id) == 0
        assert session_id
    finally:
        await engine_of(app).dispose()


async def test_a_busy_shared_address_does_not_lock_out_a_fresh_session(app_target, tmp_path: Path):
    """Found (second review): a session the process had not yet seen was counted against
    its address's anonymous budget, which anyone behind the same address could spend."""
    app = make_app(app_target, tmp_path, rate_limit_anonymous="3/minute")
    try:
        _, cookie = await console_sign_in(app, Role.ANALYST, "t.rv.shared")
        async with browser_like(app) as neighbour:
            for _ in range(6):
                await neighbour.post("/graphql", json={"query": "{ __typename }"})
        async with browser_like(app) as analyst:
            analyst.cookies.set(COOKIE, cookie)
            statuses = [
                (
                    await analyst.post(
                        "/graphql",
                        json={"query": "{ __typename }"},
                        headers={**CONSOLE, "X-Purpose-Of-Use": "RESEARCH"},
                    )
                ).status_code
                for _ in range(3)
            ]
        assert statuses == [200, 200, 200]
    finally:
        await engine_of(app).dispose()


async def test_an_ended_session_s_cookie_cannot_spend_its_owner_s_budget(
    app_target, tmp_path: Path, admin_engine: AsyncEngine
):
    """Found (third review): a signed-out cookie, replayed from anywhere, was charged to
    the person it names before the database refused it, so it kept them refused and wrote
    rate-limit events in their name without end."""
    app = make_app(
        app_target, tmp_path, rate_limit_graphql="5/minute", rate_limit_anonymous="3/minute"
    )
    try:
        victim_id, cookie = await console_sign_in(app, Role.ANALYST, "t.rv.laptop")
        async with browser_like(app) as victim:
            victim.cookies.set(COOKIE, cookie)
            assert (await victim.delete("/console/session", headers=CONSOLE)).status_code == 204
        transport = httpx.ASGITransport(app=app, client=("198.51.100.66", 5555))
        async with httpx.AsyncClient(transport=transport, base_url="https://phigate.test") as thief:
            thief.cookies.set(COOKIE, cookie)
            for _ in range(30):
                response = await thief.post(
                    "/graphql",
                    json={"query": "{ __typename }"},
                    headers={**CONSOLE, "X-Purpose-Of-Use": "RESEARCH"},
                )
                assert response.status_code in (401, 429)
        assert (
            await identity_of(app).limits.retry_after(
                identity_of(app).limits.graphql, "caller", victim_id
            )
            is None
        )
        assert await _rate_limited_events(admin_engine, victim_id) == 0
    finally:
        await engine_of(app).dispose()
