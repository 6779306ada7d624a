"""Two gateway instances on one database: every piece of identity state lives in
PostgreSQL, so revocation, lockout and rate limits hold across them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from db.engine import DatabaseTarget
from domain.roles import Role
from graph.http.app import create_app, engine_of, identity_of
from graph.settings import Settings
from tests.conftest import FAST_HASHING, TEST_KEYS
from tests.e2e.test_login import PASSWORD, code, login
from tests.identity import create_user

QUERY = {"query": "{ baas { id } }"}


@pytest.fixture
def settings() -> Settings:
    return Settings(**TEST_KEYS, **FAST_HASHING, rate_limit_graphql="5/minute")


@pytest.fixture
async def other(settings: Settings, app_target: DatabaseTarget) -> AsyncIterator[httpx.AsyncClient]:
    """A second gateway instance: its own engine, key cache and rate limiter."""
    second = create_app(settings, target=app_target)
    transport = httpx.ASGITransport(app=second, client=("203.0.113.8", 40001))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        yield http
    await engine_of(second).dispose()


@pytest.fixture
async def account(app: Starlette) -> dict:
    user_id, secret = await create_user(identity_of(app), Role.NURSE, username="test.nurse.shared")
    return {"id": user_id, "username": "test.nurse.shared", "secret": secret}


async def test_a_token_from_one_gateway_works_on_the_other_and_logout_ends_it_on_both(
    client: httpx.AsyncClient, other: httpx.AsyncClient, account: dict
) -> None:
    tokens = (await login(client, account["username"], PASSWORD, code(account["secret"]))).json()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await other.post("/graphql", json=QUERY, headers=bearer)).status_code == 200
    assert (await other.post("/auth/logout", headers=bearer)).status_code == 204
    assert (await client.post("/graphql", json=QUERY, headers=bearer)).status_code == 401
    assert (await other.post("/graphql", json=QUERY, headers=bearer)).status_code == 401


async def test_failures_on_both_gateways_add_up_to_one_lockout(
    client: httpx.AsyncClient, other: httpx.AsyncClient, account: dict
) -> None:
    for gateway in (client, other, client, other, client):
        assert (
            await login(gateway, account["username"], "wrong passphrase entirely", "000000")
        ).status_code == 401
    assert (
        await login(other, account["username"], PASSWORD, code(account["secret"]))
    ).status_code == 401


async def test_a_code_used_on_one_gateway_is_refused_on_the_other(
    client: httpx.AsyncClient, other: httpx.AsyncClient, account: dict
) -> None:
    totp = code(account["secret"])
    assert (await login(client, account["username"], PASSWORD, totp)).status_code == 200
    assert (await login(other, account["username"], PASSWORD, totp)).status_code == 401


async def test_rate_limits_are_shared(
    client: httpx.AsyncClient, other: httpx.AsyncClient, token_for
) -> None:
    bearer = {"Authorization": f"Bearer {await token_for(Role.BILLING)}"}
    statuses = [
        (await gateway.post("/graphql", json=QUERY, headers=bearer)).status_code
        for gateway in (client, other) * 3
    ]
    assert statuses == [200, 200, 200, 200, 200, 429]
