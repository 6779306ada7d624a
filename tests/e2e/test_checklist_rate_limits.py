"""Checklist C15, rate limiting tested under load: two real `phigate serve` processes on
one database take concurrent bursts of twice the limit, split across both, released at
once. The counters live in PostgreSQL (graph/http/rate_limits.py, db/rate_limits.py),
so exactly the limit gets through the pair, every other request is answered 429 with a
Retry-After, and every refusal is a RATE_LIMITED security event in the audit trail.

The window: the `limits` fixed window here is not aligned to the clock. A key's window
starts at its first hit (``expires_at = now() + 60 s``) and every burst below uses keys
nothing has hit before (a fresh database, fresh addresses, clients and accounts), so a
burst's window opens with the burst itself. Each burst checks, after its last answer,
that the counter's window is still open and holds every hit: had a window turned inside
a burst, the test would say so instead of passing or failing by luck.

The gateways run with --behind-proxy (trusting 127.0.0.1, the default), so each request
names its client address in X-Forwarded-For: that is how one test machine is many
addresses, and how the per-client and per-account limits are tested apart from the
per-address one."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from db.embedded import EmbeddedPostgres
from domain.roles import Role
from graph.http.app import identity_of
from resolvers import accounts
from resolvers.context import RequestMeta
from resolvers.identity import fingerprint
from tests.e2e.served import SUMMARY
from tests.e2e.test_serve import free_port, gateway_env, wait_ready
from tests.identity import create_user

TOKEN_LIMIT = 6
LOGIN_LIMIT = 5
WINDOW_SECONDS = 60


@dataclass(frozen=True)
class Answer:
    gateway: int  # 0 or 1: which process answered
    address: str  # the X-Forwarded-For the request carried
    status: int
    retry_after: str | None
    error: str | None
    request_id: str
    body: dict[str, Any]


@dataclass(frozen=True)
class Call:
    gateway: int
    address: str
    path: str
    options: dict[str, Any]


def _start(port: int, env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[str]:
    """`phigate serve` with its output in a file: under load, a PIPE nobody reads fills
    up and blocks the gateway's logging."""
    script = Path(sys.executable).parent / "phigate"
    with log.open("w") as output:
        return subprocess.Popen(
            [str(script), "serve", "--port", str(port), "--behind-proxy"],
            env={**env, "PHIGATE_TRUSTED_PROXIES": "127.0.0.1"},
            cwd=cwd,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )


@pytest.fixture
def gateways(tmp_path: Path, postgres: EmbeddedPostgres, database: str) -> Iterator[list[str]]:
    env = gateway_env(
        postgres,
        database,
        PHIGATE_RATE_LIMIT_TOKEN=f"{TOKEN_LIMIT}/minute",
        PHIGATE_RATE_LIMIT_LOGIN=f"{LOGIN_LIMIT}/minute",
        PHIGATE_ARGON2_TIME_COST="1",
        PHIGATE_ARGON2_MEMORY_KIB="8192",
        PHIGATE_LOG_LEVEL="WARNING",
    )
    ports = [free_port(), free_port()]
    logs = [tmp_path / f"gateway-{n}.log" for n in range(2)]
    processes: list[subprocess.Popen[str]] = []
    try:
        for port, log in zip(ports, logs, strict=True):
            processes.append(_start(port, env, tmp_path, log))
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        for base, process, log in zip(bases, processes, logs, strict=True):
            try:
                wait_ready(base, process)
            except AssertionError as failed:
                raise AssertionError(f"{failed}\n{log.read_text()[-3000:]}") from None
        yield bases
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def burst(bases: list[str], calls: list[Call]) -> list[Answer]:
    """Every call on a thread of its own with its connection already open, released
    together by a barrier: the requests reach both gateways at the same moment."""
    barrier = threading.Barrier(len(calls))

    def one(call: Call) -> Answer:
        with httpx.Client(base_url=bases[call.gateway], timeout=30) as http:
            assert http.get("/health").status_code == 200  # opens the keep-alive connection
            barrier.wait(timeout=30)
            response = http.post(
                call.path, headers={"X-Forwarded-For": call.address}, **call.options
            )
        body = response.json()
        return Answer(
            gateway=call.gateway,
            address=call.address,
            status=response.status_code,
            retry_after=response.headers.get("retry-after"),
            error=body.get("error"),
            request_id=response.headers["x-request-id"],
            body=body,
        )

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(one, calls))


def statuses(answers: list[Answer]) -> Counter[int]:
    return Counter(answer.status for answer in answers)


def per_gateway(answers: list[Answer]) -> str:
    return ", ".join(
        f"gateway {n}: {dict(sorted(statuses([a for a in answers if a.gateway == n]).items()))}"
        for n in (0, 1)
    )


def assert_refusals(answers: list[Answer]) -> list[Answer]:
    refused = [answer for answer in answers if answer.status == 429]
    for answer in refused:
        assert answer.error == "rate_limited", answer.body
        assert answer.retry_after is not None and answer.retry_after.isdigit(), answer
        assert 1 <= int(answer.retry_after) <= WINDOW_SECONDS, answer
    return refused


async def counter(engine: AsyncEngine, *identifiers: str, limit: int) -> tuple[int, bool]:
    """A shared counter's hits, and whether its window is still open."""
    key = "/".join(("LIMITER", *identifiers, str(limit), "1", "minute"))
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                text(
                    "SELECT hits, expires_at > now() AS open FROM phigate.rate_limits"
                    " WHERE key = :key"
                ),
                {"key": key},
            )
        ).one()
    return row.hits, row.open


async def assert_one_window(engine: AsyncEngine, *identifiers: str, limit: int, hits: int) -> None:
    counted, still_open = await counter(engine, *identifiers, limit=limit)
    assert still_open, (
        f"the window of {identifiers} closed before the burst was checked: rerun, the"
        " counts below are not from one window"
    )
    assert counted == hits, f"{identifiers}: {counted} hits counted, {hits} expected"


async def assert_audited(engine: AsyncEngine, refused: list[Answer], reason: str) -> None:
    """Each 429 is one RATE_LIMITED security event, DENIED, with the refused request's
    id, the reason and the client address the gateway saw."""
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                text(
                    "SELECT request_id, category, outcome, reason, client_ip FROM audit.events"
                    " WHERE action = 'RATE_LIMITED' AND request_id = ANY(:ids)"
                ),
                {"ids": [answer.request_id for answer in refused]},
            )
        ).all()
    assert len(rows) == len(refused), f"{len(rows)} events for {len(refused)} refusals"
    by_request = {row.request_id: row for row in rows}
    for answer in refused:
        row = by_request[answer.request_id]
        assert (row.category, row.outcome, row.reason) == ("SECURITY", "DENIED", reason)
        assert row.client_ip == answer.address


async def rate_limited_events(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(
            await connection.scalar(
                text("SELECT count(*) FROM audit.events WHERE action = 'RATE_LIMITED'")
            )
        )


async def post(url: str, **options: Any) -> httpx.Response:
    """One request after a burst, outside it."""
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(url, **options)


def spread(count: int) -> list[int]:
    """Which gateway each of ``count`` calls goes to: half to each, interleaved."""
    return [n % 2 for n in range(count)]


async def test_C15_token_limit_holds_per_client_and_per_address_across_two_gateways(
    gateways: list[str], app: Starlette, admin_engine: AsyncEngine
) -> None:
    ctx = identity_of(app).context(RequestMeta("test-setup"))
    service = await accounts.create_client(
        ctx, actor="test", name="C15 burst service", scopes=["baas:read"]
    )
    other = await accounts.create_client(
        ctx, actor="test", name="C15 other service", scopes=["baas:read"]
    )
    grant = {"data": {"grant_type": "client_credentials"}}
    started = time.monotonic()

    # Per client: one client's credentials from 2 x limit different addresses, so no
    # address limit applies; only the shared per-client counter can refuse.
    calls = [
        Call(
            g,
            f"198.51.100.{n + 1}",
            "/oauth/token",
            {**grant, "auth": (service.client_id, service.client_secret)},
        )
        for n, g in enumerate(spread(2 * TOKEN_LIMIT))
    ]
    answers = await asyncio.to_thread(burst, gateways, calls)
    await assert_one_window(
        admin_engine, "client", service.client_id, limit=TOKEN_LIMIT, hits=2 * TOKEN_LIMIT
    )
    SUMMARY.append(f"C15 /oauth/token per client, {len(calls)} at once: {per_gateway(answers)}")
    assert statuses(answers) == {200: TOKEN_LIMIT, 429: TOKEN_LIMIT}, per_gateway(answers)
    for answer in answers:
        if answer.status == 200:
            assert answer.body["token_type"] == "Bearer" and answer.body["access_token"]
    await assert_audited(admin_engine, assert_refusals(answers), "CLIENT_LIMIT")
    # Still refused from an address never seen, on either gateway; another client is not.
    for n, base in enumerate(gateways):
        after = await post(
            f"{base}/oauth/token",
            headers={"X-Forwarded-For": f"198.51.100.{100 + n}"},
            auth=(service.client_id, service.client_secret),
            **grant,
        )
        assert after.status_code == 429 and after.headers["retry-after"].isdigit()
    fine = await post(
        f"{gateways[1]}/oauth/token",
        headers={"X-Forwarded-For": "198.51.100.200"},
        auth=(other.client_id, other.client_secret),
        **grant,
    )
    assert fine.status_code == 200, fine.text

    # Per address: 2 x limit from one address, each naming a client of its own (none
    # registered), so no client limit applies; the allowed ones are answered 401.
    address = "203.0.113.50"
    calls = [
        Call(g, address, "/oauth/token", {**grant, "auth": (f"svc_c15_{uuid.uuid4().hex}", "x")})
        for g in spread(2 * TOKEN_LIMIT)
    ]
    answers = await asyncio.to_thread(burst, gateways, calls)
    await assert_one_window(
        admin_engine, "address", address, limit=TOKEN_LIMIT, hits=2 * TOKEN_LIMIT
    )
    SUMMARY.append(f"C15 /oauth/token per address, {len(calls)} at once: {per_gateway(answers)}")
    assert statuses(answers) == {401: TOKEN_LIMIT, 429: TOKEN_LIMIT}, per_gateway(answers)
    assert {a.error for a in answers if a.status == 401} == {"invalid_client"}
    await assert_audited(admin_engine, assert_refusals(answers), "ADDRESS_LIMIT")
    # The address is out of budget for a registered client too.
    late = await post(
        f"{gateways[0]}/oauth/token",
        headers={"X-Forwarded-For": address},
        auth=(other.client_id, other.client_secret),
        **grant,
    )
    assert late.status_code == 429

    # No refusal went unrecorded and none was recorded twice.
    assert await rate_limited_events(admin_engine) == 2 * TOKEN_LIMIT + 3
    assert time.monotonic() - started < WINDOW_SECONDS


async def test_C15_login_and_refresh_limits_hold_per_account_and_per_address_across_two_gateways(
    gateways: list[str], app: Starlette, admin_engine: AsyncEngine
) -> None:
    username = "test.c15.account"
    await create_user(identity_of(app), Role.NURSE, username=username)
    started = time.monotonic()

    def login(name: str) -> dict[str, Any]:
        return {"json": {"username": name, "password": "not the passphrase", "totp": "000000"}}

    # Per account: 2 x limit logins to one account from as many addresses, half of them
    # spelling the username in capitals (the same account). Allowed ones fail (401).
    calls = [
        Call(
            g,
            f"198.51.100.{n + 1}",
            "/auth/login",
            login(username.upper() if n % 4 < 2 else username),
        )
        for n, g in enumerate(spread(2 * LOGIN_LIMIT))
    ]
    answers = await asyncio.to_thread(burst, gateways, calls)
    await assert_one_window(
        admin_engine, "account", fingerprint(username), limit=LOGIN_LIMIT, hits=2 * LOGIN_LIMIT
    )
    SUMMARY.append(f"C15 /auth/login per account, {len(calls)} at once: {per_gateway(answers)}")
    assert statuses(answers) == {401: LOGIN_LIMIT, 429: LOGIN_LIMIT}, per_gateway(answers)
    assert {a.error for a in answers if a.status == 401} == {"invalid_grant"}
    await assert_audited(admin_engine, assert_refusals(answers), "ACCOUNT_LIMIT")

    # Per address: 2 x limit logins from one address, each to an account of its own.
    address = "203.0.113.60"
    calls = [
        Call(g, address, "/auth/login", login(f"c15.nobody.{n}"))
        for n, g in enumerate(spread(2 * LOGIN_LIMIT))
    ]
    answers = await asyncio.to_thread(burst, gateways, calls)
    await assert_one_window(
        admin_engine, "address", address, limit=LOGIN_LIMIT, hits=2 * LOGIN_LIMIT
    )
    SUMMARY.append(f"C15 /auth/login per address, {len(calls)} at once: {per_gateway(answers)}")
    assert statuses(answers) == {401: LOGIN_LIMIT, 429: LOGIN_LIMIT}, per_gateway(answers)
    await assert_audited(admin_engine, assert_refusals(answers), "ADDRESS_LIMIT")

    # Refresh, per address: 2 x limit refreshes from one address.
    address = "203.0.113.61"
    calls = [
        Call(g, address, "/auth/refresh", {"json": {"refresh_token": f"c15-{uuid.uuid4().hex}"}})
        for g in spread(2 * LOGIN_LIMIT)
    ]
    answers = await asyncio.to_thread(burst, gateways, calls)
    await assert_one_window(
        admin_engine, "address", address, limit=LOGIN_LIMIT, hits=2 * LOGIN_LIMIT
    )
    SUMMARY.append(f"C15 /auth/refresh per address, {len(calls)} at once: {per_gateway(answers)}")
    assert statuses(answers) == {401: LOGIN_LIMIT, 429: LOGIN_LIMIT}, per_gateway(answers)
    assert {a.error for a in answers if a.status == 401} == {"invalid_grant"}
    await assert_audited(admin_engine, assert_refusals(answers), "ADDRESS_LIMIT")
    # Login and refresh draw on one budget per address: a login from it is refused now.
    late = await post(
        f"{gateways[1]}/auth/login", headers={"X-Forwarded-For": address}, **login("c15.late")
    )
    assert late.status_code == 429

    assert await rate_limited_events(admin_engine) == 3 * LOGIN_LIMIT + 1
    assert time.monotonic() - started < WINDOW_SECONDS


# Found by the C15 work: the per-client counter was keyed on the client id as sent, and a
# client id over ~170 characters overflowed the counter's key: 503 instead of 401.
@pytest.mark.parametrize("where", ["basic", "form"])
async def test_C15_a_long_client_id_is_refused_as_unknown_not_answered_as_an_outage(
    client: httpx.AsyncClient, where: str
) -> None:
    async def ask(client_id: str) -> httpx.Response:
        grant = {"grant_type": "client_credentials"}
        if where == "basic":
            return await client.post("/oauth/token", data=grant, auth=(client_id, "x"))
        return await client.post(
            "/oauth/token", data={**grant, "client_id": client_id, "client_secret": "x"}
        )

    # Answered exactly like any unknown client (401 with Basic, 400 with form credentials,
    # RFC 6749 section 5.2), however long the id.
    unknown = await ask("svc_0000000000000000")
    assert unknown.json()["error"] == "invalid_client"
    for length in (180, 1000):
        response = await ask("svc_" + "c" * length)
        assert (response.status_code, response.json()) == (unknown.status_code, unknown.json())
