"""Rate limits hold per address, per account and per caller, counted in PostgreSQL."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from graph.settings import Settings
from tests.conftest import BLIND_INDEX_KEY, FAST_HASHING, MASTER_KEY
from tests.e2e.test_login import events, login


@pytest.fixture
def settings() -> Settings:
    return Settings(
        master_key=MASTER_KEY,
        blind_index_key=BLIND_INDEX_KEY,
        rate_limit_login="4/minute",
        rate_limit_graphql="3/minute",
        **FAST_HASHING,
    )


async def test_login_is_rate_limited_per_account_and_address(
    client: httpx.AsyncClient, user: dict, app_engine: AsyncEngine
) -> None:
    statuses = [
        (await login(client, user["username"], "wrong passphrase", "000000")).status_code
        for _ in range(5)
    ]
    assert statuses == [401, 401, 401, 401, 429]
    limited = await login(client, "someone.else", "wrong passphrase", "000000")
    assert limited.status_code == 429  # the address is over its limit too
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert limited.json()["error"] == "rate_limited"
    assert "RATE_LIMITED" in [e["action"] for e in await events(app_engine)]


async def test_graphql_is_rate_limited_per_caller(client: httpx.AsyncClient, token_for) -> None:
    first, second = await token_for(), await token_for()
    query = {"query": "{ baas { id } }"}
    statuses = [
        (
            await client.post("/graphql", json=query, headers={"Authorization": f"Bearer {first}"})
        ).status_code
        for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    # Another caller has a budget of its own.
    assert (
        await client.post("/graphql", json=query, headers={"Authorization": f"Bearer {second}"})
    ).status_code == 200
