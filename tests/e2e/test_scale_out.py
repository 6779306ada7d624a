"""Scale-out, for real: two `phigate serve` processes on one PostgreSQL. Sessions,
revocations, lockouts, rate limits and the audit chain all live in the database, so a
client may be sent to either process."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from db import audit
from db.embedded import EmbeddedPostgres
from domain.roles import Role
from graph.http.app import identity_of
from tests.e2e.test_login import PASSWORD, code
from tests.e2e.test_serve import free_port, gateway_env, start_gateway, wait_ready
from tests.identity import create_user

QUERY = {"query": "{ baas { id } }"}


@pytest.fixture
def gateways(
    tmp_path: Path, postgres: EmbeddedPostgres, database: str
) -> Iterator[tuple[str, str]]:
    env = gateway_env(
        postgres,
        database,
        PHIGATE_RATE_LIMIT_GRAPHQL="8/minute",
        PHIGATE_AUDIT_SEAL_SECONDS="1",
        PHIGATE_ARGON2_TIME_COST="1",
        PHIGATE_ARGON2_MEMORY_KIB="8192",
    )
    ports = free_port(), free_port()
    processes = [start_gateway(port, env, tmp_path) for port in ports]
    bases = tuple(f"http://127.0.0.1:{port}" for port in ports)
    try:
        for base, process in zip(bases, processes, strict=True):
            wait_ready(base, process)
        yield bases  # type: ignore[misc]
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)
        for process in processes:
            process.communicate(timeout=60)


async def login(base: str, username: str, password: str, totp: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        return await http.post(
            "/auth/login", json={"username": username, "password": password, "totp": totp}
        )


async def post(base: str, path: str, **kwargs: object) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        return await http.post(path, **kwargs)  # type: ignore[arg-type]


async def test_two_processes_share_every_piece_of_state(
    gateways: tuple[str, str], app: Starlette, app_engine: AsyncEngine
) -> None:
    a, b = gateways
    identity = identity_of(app)
    _, secret = await create_user(identity, Role.COMPLIANCE_OFFICER, username="test.scale.one")
    _, other_secret = await create_user(identity, Role.NURSE, username="test.scale.two")
    request_ids: set[str] = set()

    # A session opened on A works on B; logging out on B ends it on A.
    opened = await login(a, "test.scale.one", PASSWORD, code(secret))
    request_ids.add(opened.headers["x-request-id"])
    bearer = {"Authorization": f"Bearer {opened.json()['access_token']}"}
    for base in (a, b, a, b):
        assert (await post(base, "/graphql", json=QUERY, headers=bearer)).status_code == 200
    assert (await post(b, "/auth/logout", headers=bearer)).status_code == 204
    assert (await post(a, "/graphql", json=QUERY, headers=bearer)).status_code == 401

    # One caller's limit of 8 a minute is counted across both: 4 + 4, then refused.
    _, third_secret = await create_user(identity, Role.BILLING, username="test.scale.three")
    third = await login(b, "test.scale.three", PASSWORD, code(third_secret))
    request_ids.add(third.headers["x-request-id"])
    limited = {"Authorization": f"Bearer {third.json()['access_token']}"}
    for base in (a, b, a, b, a, b, a, b):
        assert (await post(base, "/graphql", json=QUERY, headers=limited)).status_code == 200
    assert (await post(a, "/graphql", json=QUERY, headers=limited)).status_code == 429

    # Failures on both add up to one lockout.
    for base in (a, b, a, b, a):
        failed = await login(base, "test.scale.two", "wrong passphrase entirely", "000000")
        assert failed.status_code == 401
        request_ids.add(failed.headers["x-request-id"])
    assert (await login(b, "test.scale.two", PASSWORD, code(other_secret))).status_code == 401

    # Both sequencers chained what both processes wrote, into one chain that verifies.
    deadline = time.monotonic() + 20
    while True:
        async with app_engine.connect() as connection:
            unsealed = await connection.scalar(
                text(
                    "SELECT count(*) FROM audit.events e"
                    " WHERE NOT EXISTS (SELECT 1 FROM audit.chain c WHERE c.event_id = e.id)"
                )
            )
        if unsealed == 0 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert unsealed == 0
    report = await audit.verify(app_engine)
    assert report.ok, report.first_broken
    async with app_engine.connect() as connection:
        recorded = set(
            (
                await connection.execute(
                    text(
                        "SELECT DISTINCT request_id FROM audit.events WHERE request_id = ANY(:ids)"
                    ),
                    {"ids": list(request_ids)},
                )
            ).scalars()
        )
        lockouts = await connection.scalar(
            text("SELECT count(*) FROM audit.events WHERE action = 'ACCOUNT_LOCKED'")
        )
    assert recorded == request_ids  # logins on A and on B, all in the one trail
    assert lockouts == 1
