"""The analyst console over HTTP: sign-in with the rules of /auth/login, a cookie that is
the session (never a token), request-forgery rules before the cookie counts, session
facts, sign-out, the operation library, and the page with and without its assets.
The same flows in a real browser are in test_console_browser.py."""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pyotp
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from db import operations as operation_store
from domain.roles import Role
from graph.execution.persisted import digest
from graph.http.app import create_app, engine_of, identity_of
from graph.http.console import assets
from graph.http.console.cookie import COOKIE
from graph.settings import Settings
from tests.conftest import FAST_HASHING, TEST_KEYS
from tests.identity import PASSWORD
from tests.identity import create_user as create_identity_user

ORIGIN = "https://phigate.test"
CONSOLE = {"X-Phigate-Console": "1", "Origin": ORIGIN}
COUNTS = "{ deidentifiedCounts(by: AGE_BAND) { minimumCellSize cells { key suppressed } } }"
RECORDS = "{ patients(first: 1) { edges { node { id } } } }"
JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+")


def fake_assets(directory: Path) -> Path:
    for relative in assets.asset_paths():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"/* stand-in for {relative} */\n")
    return directory


@pytest.fixture
async def console_app(app_target, tmp_path: Path) -> AsyncIterator[Starlette]:
    settings = Settings(
        **TEST_KEYS, **FAST_HASHING, console_assets=fake_assets(tmp_path / "assets")
    )
    application = create_app(settings, target=app_target)
    yield application
    await engine_of(application).dispose()


def browser_like(app: Starlette, base: str = ORIGIN) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
    return httpx.AsyncClient(transport=transport, base_url=base)


@pytest.fixture
async def browser(console_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with browser_like(console_app) as http:
        yield http


@pytest.fixture
async def analyst(console_app: Starlette) -> dict[str, str]:
    user_id, secret = await create_identity_user(
        identity_of(console_app), Role.ANALYST, username="test.console.analyst"
    )
    return {"id": user_id, "username": "test.console.analyst", "secret": secret}


def code(secret: str, steps_ahead: int = 0) -> str:
    totp = pyotp.TOTP(secret)
    return totp.at(datetime.now(UTC) + timedelta(seconds=30 * steps_ahead))


async def sign_in(http: httpx.AsyncClient, user: dict[str, str], step: int = 0) -> httpx.Response:
    return await http.post(
        "/console/session",
        json={
            "username": user["username"],
            "password": PASSWORD,
            "totp": code(user["secret"], step),
        },
        headers=CONSOLE,
    )


async def events(engine: AsyncEngine, action: str) -> list[dict]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT action, outcome, reason, actor_id FROM audit.events"
                " WHERE action = :action ORDER BY id"
            ),
            {"action": action},
        )
        return [dict(row._mapping) for row in rows]


async def test_a_browser_opening_graphql_is_sent_to_the_console(browser: httpx.AsyncClient):
    response = await browser.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 303
    assert response.headers["location"] == "/console"


async def test_the_page_loads_only_its_own_files_pinned_by_integrity(
    browser: httpx.AsyncClient,
):
    response = await browser.get("/console")
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "style-src 'self';" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    page = response.text
    assert "<script>" not in page and "style=" not in page and "<style" not in page
    tags = re.findall(
        r'<(?:script src|link rel="stylesheet" href)="([^"]+)" integrity="([^"]+)"', page
    )
    assert len(tags) == len(assets.asset_paths()) + 2
    for url, integrity in tags:
        assert url.startswith("/console/"), url
        served = await browser.get(url)
        assert served.status_code == 200, url
        expected = base64.b64encode(hashlib.sha384(served.content).digest()).decode()
        assert integrity == f"sha384-{expected}"


async def test_without_assets_the_page_says_what_to_run(app_target, tmp_path: Path):
    settings = Settings(**TEST_KEYS, **FAST_HASHING, console_assets=tmp_path / "absent")
    application = create_app(settings, target=app_target)
    try:
        async with browser_like(application) as http:
            response = await http.get("/console")
    finally:
        await engine_of(application).dispose()
    assert response.status_code == 503
    assert "phigate console fetch-assets" in response.text
    assert "<script" not in response.text
    assert "unsafe-inline" not in response.headers["content-security-policy"]


async def test_sign_in_gives_a_host_only_http_only_cookie_and_no_token(
    browser: httpx.AsyncClient, analyst: dict[str, str], console_app: Starlette
):
    response = await sign_in(browser, analyst)
    assert response.status_code == 200, response.text
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    for attribute in ("Path=/", "Secure", "HttpOnly", "SameSite=Strict"):
        assert attribute in cookie
    assert "domain" not in cookie.lower()
    assert "access_token" not in response.text and not JWT.search(response.text)
    assert response.json() == {"signedIn": True}
    assert "no-store" in response.headers["cache-control"]
    succeeded = await events(engine_of(console_app), "LOGIN_SUCCEEDED")
    assert [(e["actor_id"], e["reason"]) for e in succeeded] == [(analyst["id"], "CONSOLE")]


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"Origin": ORIGIN}, "CONSOLE_HEADER_MISSING"),
        ({"X-Phigate-Console": "1"}, "ORIGIN_MISMATCH"),
        ({"X-Phigate-Console": "1", "Origin": "https://evil.example"}, "ORIGIN_MISMATCH"),
    ],
)
async def test_sign_in_from_another_page_is_refused(
    browser: httpx.AsyncClient, analyst: dict[str, str], headers: dict, reason: str
):
    response = await browser.post(
        "/console/session",
        json={
            "username": analyst["username"],
            "password": PASSWORD,
            "totp": code(analyst["secret"]),
        },
        headers=headers,
    )
    assert response.status_code == 403
    assert response.json()["reason"] == reason
    assert "set-cookie" not in response.headers


async def test_sign_in_over_plain_http_to_another_host_is_refused(
    console_app: Starlette, analyst: dict[str, str]
):
    async with browser_like(console_app, "http://phigate.internal") as http:
        response = await http.post(
            "/console/session",
            json={
                "username": analyst["username"],
                "password": PASSWORD,
                "totp": code(analyst["secret"]),
            },
            headers={"X-Phigate-Console": "1", "Origin": "http://phigate.internal"},
        )
    assert response.status_code == 400
    assert "HTTPS" in response.json()["error_description"]
    assert "set-cookie" not in response.headers


async def test_sign_in_follows_the_login_rules(
    browser: httpx.AsyncClient, analyst: dict[str, str], console_app: Starlette
):
    # A code is good once.
    assert (await sign_in(browser, analyst)).status_code == 200
    reused = await sign_in(browser, analyst)
    assert reused.status_code == 401
    assert reused.json()["error_description"] == "Invalid username, password or one-time code."
    assert [e["reason"] for e in await events(engine_of(console_app), "MFA_FAILED")] == [
        "CODE_REUSED"
    ]
    # Missing fields are named.
    missing = await browser.post(
        "/console/session", json={"username": analyst["username"]}, headers=CONSOLE
    )
    assert missing.status_code == 400
    assert "'password'" in missing.json()["error_description"]
    # Five wrong passwords lock the account, as they would at /auth/login.
    for _ in range(5):
        wrong = await browser.post(
            "/console/session",
            json={"username": analyst["username"], "password": PASSWORD[::-1], "totp": "000000"},
            headers=CONSOLE,
        )
        assert wrong.status_code in (401, 429)
    locked = await sign_in(browser, analyst, step=1)
    assert locked.status_code in (401, 429)
    assert await events(engine_of(console_app), "ACCOUNT_LOCKED")


async def signed_in(browser: httpx.AsyncClient, analyst: dict[str, str]) -> str:
    response = await sign_in(browser, analyst)
    assert response.status_code == 200, response.text
    return browser.cookies[COOKIE]


async def graphql(
    http: httpx.AsyncClient, query: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await http.post(
        "/graphql",
        json={"query": query},
        headers={**CONSOLE, "X-Purpose-Of-Use": "RESEARCH", **(headers or {})},
    )


async def test_the_cookie_authenticates_console_requests_with_the_role_s_rights(
    browser: httpx.AsyncClient, analyst: dict[str, str], seeded: int
):
    await signed_in(browser, analyst)
    counts = await graphql(browser, COUNTS)
    assert counts.status_code == 200
    assert counts.json()["data"]["deidentifiedCounts"]["minimumCellSize"] == 11
    refused = await graphql(browser, RECORDS)
    assert refused.json()["data"] is None
    assert refused.json()["errors"][0]["extensions"]["code"].startswith("FORBIDDEN")


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"X-Phigate-Console": ""}, "CONSOLE_HEADER_MISSING"),
        ({"Origin": "https://evil.example"}, "ORIGIN_MISMATCH"),
        ({"Origin": "http://phigate.test"}, "ORIGIN_MISMATCH"),  # same host, other scheme
        ({"Sec-Fetch-Site": "cross-site"}, "CROSS_SITE"),
        ({"Sec-Fetch-Site": "same-site"}, "CROSS_SITE"),
        ({"X-Break-Glass-Reason": "synthetic emergency reason"}, "BREAK_GLASS_IN_CONSOLE"),
    ],
)
async def test_a_cookie_without_the_console_s_proof_is_refused_and_recorded(
    browser: httpx.AsyncClient,
    analyst: dict[str, str],
    console_app: Starlette,
    headers: dict[str, str],
    reason: str,
):
    await signed_in(browser, analyst)
    response = await graphql(browser, COUNTS, headers)
    assert response.status_code == 403
    assert response.json()["reason"] == reason
    assert "deidentifiedCounts" not in response.text
    recorded = await events(engine_of(console_app), "CONSOLE_REQUEST_REFUSED")
    assert [(e["outcome"], e["reason"]) for e in recorded] == [("DENIED", reason)]


async def test_a_form_post_with_the_cookie_executes_nothing(
    browser: httpx.AsyncClient, analyst: dict[str, str]
):
    await signed_in(browser, analyst)
    response = await browser.post(
        "/graphql",
        content=f'{{"query": "{COUNTS}"}}',
        headers={"Content-Type": "text/plain", "Origin": "https://evil.example"},
    )
    assert response.status_code == 415
    assert "deidentifiedCounts" not in response.text


async def test_the_cookie_counts_nowhere_else(browser: httpx.AsyncClient, analyst: dict[str, str]):
    await signed_in(browser, analyst)
    # /auth/logout takes a bearer token: the console's cookie is not one.
    response = await browser.post("/auth/logout", headers=CONSOLE)
    assert response.status_code == 401


async def test_session_facts_and_asking_is_not_activity(
    browser: httpx.AsyncClient, analyst: dict[str, str], admin_engine: AsyncEngine
):
    await signed_in(browser, analyst)
    async with admin_engine.begin() as connection:
        await connection.execute(
            text(
                "UPDATE phigate.sessions SET last_seen_at = now() - interval '10 minutes'"
                " WHERE user_id = :user"
            ),
            {"user": uuid.UUID(analyst["id"])},
        )
    response = await browser.get("/console/session", headers={"X-Phigate-Console": "1"})
    assert response.status_code == 200
    facts = response.json()
    assert facts["username"] == analyst["username"]
    assert facts["role"] == "ANALYST"
    assert facts["purposes"] and "EMERGENCY" not in facts["purposes"]
    assert facts["idleSeconds"] == 15 * 60
    assert 4 * 60 <= facts["idleRemainingSeconds"] <= 5 * 60
    assert 11 * 3600 < facts["absoluteRemainingSeconds"] <= 12 * 3600
    again = await browser.get("/console/session", headers={"X-Phigate-Console": "1"})
    assert again.json()["idleRemainingSeconds"] <= facts["idleRemainingSeconds"]
    # A GraphQL request is activity: the idle clock starts again.
    await graphql(browser, "{ __typename }")
    after = await browser.get("/console/session", headers={"X-Phigate-Console": "1"})
    assert after.json()["idleRemainingSeconds"] > 14 * 60


@pytest.mark.parametrize("ending", ["sign_out", "administrator", "revoked", "idle", "disabled"])
async def test_an_ended_session_s_cookie_is_worthless(
    browser: httpx.AsyncClient,
    analyst: dict[str, str],
    admin_engine: AsyncEngine,
    console_app: Starlette,
    ending: str,
):
    cookie = await signed_in(browser, analyst)
    user = uuid.UUID(analyst["id"])
    if ending == "sign_out":
        response = await browser.delete("/console/session", headers=CONSOLE)
        assert response.status_code == 204
        assert response.headers["set-cookie"].startswith(f"{COOKIE}=;")
        assert "Max-Age=0" in response.headers["set-cookie"]
        assert [e["actor_id"] for e in await events(engine_of(console_app), "LOGOUT")] == [
            analyst["id"]
        ]
        browser.cookies.set(COOKIE, cookie)  # kept by a browser that ignored the clearing
    elif ending == "administrator":
        from resolvers.accounts import sign_out_user
        from resolvers.context import RequestMeta

        ctx = identity_of(console_app).context(RequestMeta(request_id="test-admin"))
        await sign_out_user(ctx, actor="test-operator", username=analyst["username"])
        revoked = await events(engine_of(console_app), "USER_SESSIONS_REVOKED")
        assert [e["reason"] for e in revoked] == [f"USER:{analyst['id']}"]
    else:
        statement = {
            "revoked": "UPDATE phigate.sessions SET revoked_at = now() WHERE user_id = :user",
            "idle": "UPDATE phigate.sessions SET last_seen_at = now() - interval '16 minutes'"
            " WHERE user_id = :user",
            "disabled": "UPDATE phigate.users SET status = 'DISABLED' WHERE id = :user",
        }[ending]
        async with admin_engine.begin() as connection:
            await connection.execute(text(statement), {"user": user})
    response = await graphql(browser, COUNTS)
    assert response.status_code == 401
    assert response.json()["error"] == "session_ended"
    assert "Max-Age=0" in response.headers["set-cookie"]
    facts = await browser.get("/console/session", headers={"X-Phigate-Console": "1"})
    assert facts.status_code == 401


# A session id no database holds (fixed, so that test ids are the same in every process).
UNKNOWN_SESSION = uuid.UUID("00000000-0000-4000-8000-00000000f0f0")


@pytest.mark.parametrize(
    "value",
    [
        "garbage",
        f"{UNKNOWN_SESSION}.{'a' * 43}",
        "not-a-uuid." + "b" * 43,
        f"{UNKNOWN_SESSION}.short",
    ],
    ids=["garbage", "unknown-session", "not-a-uuid", "short-mac"],
)
async def test_a_forged_cookie_is_no_session(
    browser: httpx.AsyncClient, value: str, analyst: dict[str, str]
):
    browser.cookies.set(COOKIE, value)
    response = await graphql(browser, COUNTS)
    assert response.status_code == 401
    assert value not in response.text


async def test_the_library_lists_registered_operations_the_role_may_run(
    browser: httpx.AsyncClient, analyst: dict[str, str], console_app: Starlette
):
    engine = engine_of(console_app)
    for document, source in (
        (
            "# Patients by age band, small cells suppressed.\n"
            "query CountsByAge { deidentifiedCounts(by: AGE_BAND) { cells { key patients } } }",
            "REGISTERED",
        ),
        ("query FirstPatient { patients(first: 1) { edges { node { id } } } }", "REGISTERED"),
        ("query SomeoneElses { deidentifiedCounts(by: ZIP3) { cells { key } } }", "AUTOMATIC"),
    ):
        await operation_store.store(
            engine, digest(document), document, source=source, registered_by="test"
        )
    await signed_in(browser, analyst)
    response = await browser.get("/console/operations", headers={"X-Phigate-Console": "1"})
    assert response.status_code == 200
    listed = response.json()["operations"]
    assert [item["name"] for item in listed] == ["CountsByAge"]
    assert listed[0]["description"] == "Patients by age band, small cells suppressed."
    assert "RESEARCH" in listed[0]["purposes"] and "EMERGENCY" not in listed[0]["purposes"]
    assert listed[0]["document"].endswith("{ cells { key patients } } }")


async def test_bearer_callers_are_unaffected(
    browser: httpx.AsyncClient, console_app: Starlette, analyst: dict[str, str]
):
    """A token client sends no console header and no Origin: nothing changes for it,
    and a console cookie riding along with a token is not what authenticates it."""
    from tests.identity import issue_token

    token = await issue_token(identity_of(console_app), Role.ANALYST)
    await signed_in(browser, analyst)
    response = await browser.post(
        "/graphql",
        json={"query": COUNTS},
        headers={"Authorization": f"Bearer {token}", "X-Purpose-Of-Use": "RESEARCH"},
    )
    assert response.status_code == 200
    assert response.json()["data"]["deidentifiedCounts"]["minimumCellSize"] == 11


async def test_nothing_of_a_session_reaches_the_logs_or_the_trail(
    browser: httpx.AsyncClient,
    analyst: dict[str, str],
    admin_engine: AsyncEngine,
    capsys: pytest.CaptureFixture[str],
):
    cookie = await signed_in(browser, analyst)
    await graphql(browser, COUNTS, {"Origin": "https://evil.example"})
    await browser.delete("/console/session", headers=CONSOLE)
    captured = capsys.readouterr()
    secret = cookie.split(".", 1)[1]
    assert secret not in captured.out + captured.err
    async with admin_engine.connect() as connection:
        trail = await connection.scalar(text("SELECT string_agg(e::text, ' ') FROM audit.events e"))
    assert trail and secret not in trail and PASSWORD not in trail
