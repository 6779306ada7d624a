"""Humans: password + TOTP, lockout, sessions, refresh rotation, logout."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta

import httpx
import pyotp
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from graph.http.app import identity_of
from resolvers import accounts
from resolvers.context import RequestMeta
from resolvers.identity import Passwords
from tests.identity import PASSWORD

GENERIC = {
    "error": "invalid_grant",
    "error_description": "Invalid username, password or one-time code.",
}
QUERY = {"query": "{ baas { id } }"}


def code(secret: str, offset: int = 0) -> str:
    return pyotp.TOTP(secret).at(datetime.now(UTC), counter_offset=offset)


async def login(
    client: httpx.AsyncClient, username: str, password: str, totp: str
) -> httpx.Response:
    return await client.post(
        "/auth/login", json={"username": username, "password": password, "totp": totp}
    )


async def events(engine: AsyncEngine) -> list[dict]:
    async with engine.connect() as connection:
        rows = await connection.execute(text("SELECT * FROM audit.events ORDER BY id"))
        return [dict(row._mapping) for row in rows]


def claims_of(token: str) -> tuple[dict, dict]:
    header, payload, _ = token.split(".")
    decode = lambda part: json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))  # noqa: E731
    return decode(header), decode(payload)


async def test_login_answers_an_oauth_token_response(client: httpx.AsyncClient, user: dict) -> None:
    response = await login(client, user["username"], PASSWORD, code(user["secret"]))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300
    assert response.headers["cache-control"] == "no-store"
    header, claims = claims_of(body["access_token"])
    assert header["alg"] == "ES256" and header["typ"] == "at+jwt" and header["kid"]
    assert claims["sub"] == user["id"] and claims["role"] == "CLINICIAN"
    assert claims["iss"] == "phigate" and claims["aud"] == "phigate-api"
    assert claims["exp"] - claims["iat"] == 300 and claims["jti"] and claims["sid"]
    assert (
        await client.post(
            "/graphql", json=QUERY, headers={"Authorization": f"Bearer {body['access_token']}"}
        )
    ).status_code == 200


async def test_failures_look_alike_and_cost_alike_whether_or_not_the_user_exists(
    client: httpx.AsyncClient, user: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    verified: list[bool] = []
    original = Passwords.check
    monkeypatch.setattr(
        Passwords,
        "check",
        lambda self, stored, pw: verified.append(stored is None) or original(self, stored, pw),
    )
    attempts = [
        ("nobody.here", PASSWORD, code(user["secret"])),
        (user["username"], "wrong passphrase entirely", code(user["secret"])),
        (user["username"], PASSWORD, "000000"),
    ]
    for username, password, totp in attempts:
        response = await login(client, username, password, totp)
        assert (response.status_code, response.json()) == (401, GENERIC)
    # One argon2 verification per attempt; for the unknown user, against the decoy hash.
    assert verified == [True, False, False]


async def test_mfa_is_mandatory(
    client: httpx.AsyncClient, user: dict, app_engine: AsyncEngine
) -> None:
    missing = await client.post(
        "/auth/login", json={"username": user["username"], "password": PASSWORD}
    )
    assert missing.status_code == 400 and "'totp'" in missing.json()["error_description"]
    wrong = await login(
        client,
        user["username"],
        PASSWORD,
        "123456" if code(user["secret"]) != "123456" else "654321",
    )
    assert wrong.status_code == 401
    assert [e["action"] for e in await events(app_engine) if e["category"] == "SECURITY"][
        -1
    ] == "MFA_FAILED"


async def test_a_code_is_accepted_once(
    client: httpx.AsyncClient, user: dict, app_engine: AsyncEngine
) -> None:
    totp = code(user["secret"])
    assert (await login(client, user["username"], PASSWORD, totp)).status_code == 200
    replay = await login(client, user["username"], PASSWORD, totp)
    assert replay.status_code == 401
    assert (await events(app_engine))[-1]["reason"] == "CODE_REUSED"


async def test_a_code_replayed_concurrently_succeeds_exactly_once(
    client: httpx.AsyncClient, user: dict
) -> None:
    totp = code(user["secret"])
    responses = await asyncio.gather(
        *(login(client, user["username"], PASSWORD, totp) for _ in range(4))
    )
    assert sorted(r.status_code for r in responses) == [200, 401, 401, 401]


async def test_lockout_after_five_failures_until_an_admin_unlocks(
    client: httpx.AsyncClient, user: dict, app: Starlette, app_engine: AsyncEngine
) -> None:
    for _ in range(5):
        assert (
            await login(client, user["username"], "wrong passphrase entirely", code(user["secret"]))
        ).status_code == 401
    totp = code(user["secret"])
    locked = await login(client, user["username"], PASSWORD, totp)
    assert (locked.status_code, locked.json()) == (
        401,
        GENERIC,
    )  # same answer: a lock reveals nothing
    actions = [e["action"] for e in await events(app_engine)]
    assert actions.count("ACCOUNT_LOCKED") == 1 and actions[-1] == "LOGIN_WHILE_LOCKED"
    identity = identity_of(app)
    await accounts.unlock_user(
        identity.context(RequestMeta("t")), actor="test-admin", username=user["username"]
    )
    assert (await login(client, user["username"], PASSWORD, totp)).status_code == 200
    assert "USER_UNLOCKED" in [e["action"] for e in await events(app_engine)]


async def test_a_lock_runs_out_after_its_duration(
    client: httpx.AsyncClient, user: dict, admin_engine: AsyncEngine
) -> None:
    async with admin_engine.begin() as connection:
        await connection.execute(
            text(
                "UPDATE phigate.users SET failed_logins = 5, locked_until = now() - interval '1 second' WHERE username = :u"
            ),
            {"u": user["username"]},
        )
    assert (
        await login(client, user["username"], PASSWORD, code(user["secret"]))
    ).status_code == 200


async def test_refresh_rotates_and_a_reused_token_revokes_the_session(
    client: httpx.AsyncClient, user: dict, app_engine: AsyncEngine
) -> None:
    first = (await login(client, user["username"], PASSWORD, code(user["secret"]))).json()
    second = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    second_tokens = second.json()
    assert second_tokens["refresh_token"] != first["refresh_token"]
    assert (
        claims_of(second_tokens["access_token"])[1]["sid"]
        == claims_of(first["access_token"])[1]["sid"]
    )
    # The old refresh token is dead; presenting it again revokes the whole session.
    reuse = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401
    for token in (first["access_token"], second_tokens["access_token"]):
        assert (
            await client.post("/graphql", json=QUERY, headers={"Authorization": f"Bearer {token}"})
        ).status_code == 401
    assert (
        await client.post("/auth/refresh", json={"refresh_token": second_tokens["refresh_token"]})
    ).status_code == 401
    assert "REFRESH_REUSE_DETECTED" in [e["action"] for e in await events(app_engine)]


async def test_logout_revokes_the_session(
    client: httpx.AsyncClient, user: dict, app_engine: AsyncEngine
) -> None:
    tokens = (await login(client, user["username"], PASSWORD, code(user["secret"]))).json()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await client.post("/auth/logout", headers=bearer)).status_code == 204
    assert (await client.post("/graphql", json=QUERY, headers=bearer)).status_code == 401
    assert (
        await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    ).status_code == 401
    assert "LOGOUT" in [e["action"] for e in await events(app_engine)]


@pytest.mark.parametrize(
    "expire",
    [
        "UPDATE phigate.sessions SET last_seen_at = now() - interval '16 minutes'",  # idle
        "UPDATE phigate.sessions SET expires_at = now() - interval '1 second'",  # absolute lifetime
    ],
    ids=["idle", "absolute"],
)
async def test_idle_and_expired_sessions_are_refused(
    client: httpx.AsyncClient, user: dict, admin_engine: AsyncEngine, expire: str
) -> None:
    tokens = (await login(client, user["username"], PASSWORD, code(user["secret"]))).json()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await client.post("/graphql", json=QUERY, headers=bearer)).status_code == 200
    async with admin_engine.begin() as connection:
        await connection.execute(text(expire))
    assert (await client.post("/graphql", json=QUERY, headers=bearer)).status_code == 401
    assert (
        await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    ).status_code == 401


async def test_activity_keeps_a_session_alive(
    client: httpx.AsyncClient, user: dict, admin_engine: AsyncEngine
) -> None:
    tokens = (await login(client, user["username"], PASSWORD, code(user["secret"]))).json()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    async with admin_engine.begin() as connection:
        await connection.execute(
            text("UPDATE phigate.sessions SET last_seen_at = now() - interval '14 minutes'")
        )
    assert (await client.post("/graphql", json=QUERY, headers=bearer)).status_code == 200
    async with admin_engine.connect() as connection:
        idle = await connection.scalar(text("SELECT now() - last_seen_at FROM phigate.sessions"))
    assert idle < timedelta(minutes=1)


async def test_a_disabled_user_is_out_at_once(
    client: httpx.AsyncClient, user: dict, app: Starlette
) -> None:
    tokens = (await login(client, user["username"], PASSWORD, code(user["secret"]))).json()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    await accounts.disable_user(
        identity_of(app).context(RequestMeta("t")), actor="test-admin", username=user["username"]
    )
    assert (await client.post("/graphql", json=QUERY, headers=bearer)).status_code == 401
    assert (
        await login(client, user["username"], PASSWORD, code(user["secret"], 1))
    ).status_code == 401


async def test_security_events_hold_no_password_code_or_username_typed(
    client: httpx.AsyncClient, user: dict, app_engine: AsyncEngine
) -> None:
    canary_password, canary_username = "canary-passphrase-77", "canary.typed.name"
    await login(client, user["username"], canary_password, "424242")
    await login(client, canary_username, canary_password, "424242")
    tokens = (await login(client, user["username"], PASSWORD, code(user["secret"]))).json()
    dump = json.dumps(await events(app_engine), default=str)
    for secret in (
        canary_password,
        canary_username,
        PASSWORD,
        "424242",
        tokens["access_token"],
        tokens["refresh_token"],
        user["secret"],
    ):
        assert secret not in dump
    unknown = [e for e in await events(app_engine) if e["reason"] == "UNKNOWN_USER"]
    assert unknown and unknown[0]["subject_hash"] and unknown[0]["actor_id"] is None
    success = next(e for e in await events(app_engine) if e["action"] == "LOGIN_SUCCEEDED")
    assert (
        success["actor_id"] == user["id"]
        and success["client_ip"] == "203.0.113.7"
        and success["request_id"]
    )


@pytest.mark.parametrize("path", ["/auth/login", "/auth/refresh"])
async def test_an_auth_body_over_8_kib_is_413(
    client: httpx.AsyncClient, path: str, app_engine: AsyncEngine
) -> None:
    response = await client.post(
        path,
        content=b'{"username": "' + b"a" * 9000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"] == "invalid_request"
    assert "at most 8192 bytes" in response.json()["error_description"]
    assert await events(app_engine) == []


@pytest.mark.parametrize(
    ("content", "content_type", "fragment"),
    [
        (b"{not json", "application/json", "not valid JSON"),
        (b'[{"username": "a"}]', "application/json", "must be a JSON object"),
        (b'{"username": "a", "password": "b"}', "application/json", "'totp' is required"),
        (
            b'{"username": 7, "password": "b", "totp": "1"}',
            "application/json",
            "'username' must be a non-empty string",
        ),
        (b"username=a&password=b&totp=1", "application/x-www-form-urlencoded", "must be JSON"),
        (b'{"username": "a", "password": "b", "totp": "1"}', "text/plain", "must be JSON"),
        (
            b'{"username": "a\\u0000", "password": "b", "totp": "1"}',
            "application/json",
            "'username' must not contain NUL characters or unpaired surrogates",
        ),
        (
            b'{"username": "a", "password": "\\ud800", "totp": "1"}',
            "application/json",
            "'password' must not contain NUL characters or unpaired surrogates",
        ),
    ],
)
async def test_malformed_login_requests_get_a_clear_400(
    client: httpx.AsyncClient,
    content: bytes,
    content_type: str,
    fragment: str,
    app_engine: AsyncEngine,
) -> None:
    response = await client.post(
        "/auth/login", content=content, headers={"Content-Type": content_type}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert fragment in response.json()["error_description"]
    assert await events(app_engine) == []
