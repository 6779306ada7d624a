"""A request never holds one pooled connection while it waits for another: with more
requests in flight than connections, each still completes (found by the peer benchmark:
at 64 clients a worker's pool was all held by requests waiting for a second connection
to count their rate-limit hit, and stalled until the pool's timeout). And connections
opened for a burst are kept, not opened again for every burst."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import event
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


@pytest.fixture
async def bursting(app_target: DatabaseTarget) -> AsyncIterator[Starlette]:
    settings = Settings(**TEST_KEYS, **FAST_HASHING, db_pool_size=2, db_max_overflow=2)
    application = create_app(settings, target=app_target)
    yield application
    await engine_of(application).dispose()


async def test_connections_opened_for_a_burst_are_kept(bursting: Starlette) -> None:
    """Found by the peer benchmark: with the default pool (10, and 5 more under burst)
    and load a little above it, SQLAlchemy closed each burst connection when it came
    back, and the next burst opened it again: a PostgreSQL backend started, and every
    statement prepared and planned, over and over (1.7 times the database's CPU per
    request at 64 clients). Five bursts of four requests on a pool of two and two more
    open four connections, not two plus two per burst."""
    opened = 0

    def connected(*_: object) -> None:
        nonlocal opened
        opened += 1

    event.listen(engine_of(bursting).sync_engine, "connect", connected)
    transport = httpx.ASGITransport(app=bursting, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        tokens = [await issue_token(identity_of(bursting), Role.AUDITOR) for _ in range(4)]
        opened = 0
        for _ in range(5):
            responses = await asyncio.gather(
                *(client.post("/graphql", json={"query": "{ baas { id } }"},
                              headers={"Authorization": f"Bearer {token}"})
                  for token in tokens)
            )  # fmt: skip
            assert [r.status_code for r in responses] == [200] * 4
            assert all("errors" not in r.json() for r in responses)
    assert opened <= 4, f"{opened} connections opened for five bursts of four requests"
