"""A request never holds one pooled connection while it waits for another: with more
requests in flight than connections, each still completes (found by the peer benchmark:
at 64 clients a worker's pool was all held by requests waiting for a second connection
to count their rate-limit hit, and stalled until the pool's timeout)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from db.engine import DatabaseTarget
from domain.roles import Role
from graph.http.app import create_app, engine_of, identity_of
from graph.settings import Settings
from tests.conftest import FAST_HASHING, TEST_KEYS
from tests.identity import issue_token


@pytest.fixture
async def app(app_target: DatabaseTarget) -> AsyncIterator[Starlette]:
    settings = Settings(
        **TEST_KEYS, **FAST_HASHING, db_pool_size=2, db_max_overflow=0, rate_limit_lease=1
    )
    application = create_app(settings, target=app_target)
    yield application
    await engine_of(application).dispose()


async def test_more_requests_than_connections_all_complete(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    headers = {"Authorization": f"Bearer {await issue_token(identity_of(app), Role.AUDITOR)}"}
    async with asyncio.timeout(20):  # a starved pool waits out its 30-second timeout
        responses = await asyncio.gather(
            *(client.post("/graphql", json={"query": "{ baas { id } }"}, headers=headers)
              for _ in range(12))
        )  # fmt: skip
    assert [r.status_code for r in responses] == [200] * 12
    assert all("errors" not in r.json() for r in responses)
