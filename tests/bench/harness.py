"""Shared benchmark machinery: an embedded PostgreSQL with synthetic data, interleaved
timing of the cases being compared, and results as ratios (these machines are noisy:
ratios measured side by side in one run are what we quote)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import platform
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from db.crypto import BlindIndex, Envelope, FieldCipher, LocalKeyProvider, generate_key
from db.demo import seed_demo
from db.embedded import EmbeddedPostgres, start_embedded
from db.engine import DatabaseTarget, create_engine
from db.migrate import upgrade
from db.sessions import SessionOpening, new_secret
from db.unit_of_work import RequestDatabase
from domain.principals import Service
from domain.roles import ServiceScope

BENCH_KEYS = (generate_key(), generate_key())
# A service with patients:read: the caller of the in-process cases.
READER = Service(client_id="bench", scopes=frozenset({ServiceScope.PATIENTS_READ}))


def bench_cipher() -> FieldCipher:
    master, index = BENCH_KEYS
    return FieldCipher(
        Envelope(LocalKeyProvider.from_base64(master)), BlindIndex.from_base64(index)
    )


@dataclass
class Measurement:
    name: str
    samples_ms: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p90(self) -> float:
        ordered = sorted(self.samples_ms)
        return ordered[int(len(ordered) * 0.9) - 1]


async def interleaved(
    cases: dict[str, Callable[[], Awaitable[Any]]], *, rounds: int, warmup: int = 20
) -> dict[str, Measurement]:
    """Time each case once per round, in rotating order, so drift and noise fall on
    every case alike."""
    for _ in range(warmup):
        for run in cases.values():
            await run()
    results = {name: Measurement(name) for name in cases}
    names = list(cases)
    gc.collect()
    for round_number in range(rounds):
        order = names[round_number % len(names) :] + names[: round_number % len(names)]
        for name in order:
            started = time.perf_counter()
            await cases[name]()
            results[name].samples_ms.append((time.perf_counter() - started) * 1000)
    return results


def ratio(results: dict[str, Measurement], numerator: str, denominator: str) -> float:
    """The median of per-round ratios: each round times both cases back to back, so a
    slow spell of the machine falls on both sides of a ratio instead of on one median."""
    pairs = zip(results[numerator].samples_ms, results[denominator].samples_ms, strict=True)
    return round(statistics.median(a / b for a, b in pairs), 3)


def summary(results: dict[str, Measurement]) -> dict[str, dict[str, float]]:
    return {
        name: {
            "median_ms": round(m.median, 3),
            "p90_ms": round(m.p90, 3),
            "samples": len(m.samples_ms),
        }
        for name, m in results.items()
    }


def machine() -> dict[str, str]:
    return {
        "date": datetime.now(UTC).date().isoformat(),
        "python": platform.python_version(),
        "cpus": str(os.cpu_count()),
        "platform": platform.platform(terse=True),
    }


@dataclass
class Database:
    server: EmbeddedPostgres
    app: DatabaseTarget
    admin: DatabaseTarget
    patients: int


# The peer case can serve two builds of phigate (2 workers each, every worker keeping up
# to pool + overflow = 25 connections) beside PostGraphile's and the raw route's pools:
# more than PostgreSQL's default of 100 (less its reserved slots), and a gateway refused
# a connection answers 503.
MAX_CONNECTIONS = 250


def database(patients: int) -> Database:
    """A fresh embedded PostgreSQL, migrated and seeded with synthetic patients."""
    data_dir = Path(tempfile.mkdtemp(prefix="phigate-bench-")) / "pgdata"
    server = start_embedded(data_dir)
    server.allow_connections(MAX_CONNECTIONS)
    server.ensure_database("bench")
    upgrade(server.admin_target("bench"))

    async def seed() -> None:
        # Every patient's record: the schema owner seeds (as `phigate seed-demo` does).
        engine = create_engine(server.admin_target("bench"), pool_size=1, max_overflow=0)
        try:
            async with engine.begin() as connection:
                await seed_demo(connection, cipher=bench_cipher(), patients=patients)
                await connection.execute(
                    text(
                        "INSERT INTO phigate.oauth_clients (client_id, name, secret_hash, scopes)"
                        " VALUES ('bench', 'Benchmark reader (synthetic)', 'unused',"
                        " '{patients:read}') ON CONFLICT DO NOTHING"
                    )
                )
        finally:
            await engine.dispose()

    asyncio.run(seed())
    return Database(
        server, server.app_target("bench"), server.admin_target("bench"), patients=patients
    )


@contextlib.asynccontextmanager
async def bench_identity(db: Database) -> AsyncIterator[Any]:
    """The gateway's identity service on the bench database: to mint callers' tokens."""
    from graph.http.app import create_app, engine_of, identity_of
    from graph.settings import Settings

    master, index = BENCH_KEYS
    settings = Settings(master_key=master, blind_index_key=index, access_token_ttl_seconds=3600)
    app = create_app(settings, target=db.app)
    try:
        yield identity_of(app)
    finally:
        await engine_of(app).dispose()


def server_env(db: Database, **extra: str) -> dict[str, str]:
    """The environment a gateway process under benchmark runs with: the bench database
    and keys, no rate limit in the way, warnings only."""
    master, index = BENCH_KEYS
    return {
        **os.environ,
        "DATABASE_URL": db.app.url.render_as_string(hide_password=False),
        "PHIGATE_MASTER_KEY": master,
        "PHIGATE_BLIND_INDEX_KEY": index,
        "PHIGATE_RATE_LIMIT_GRAPHQL": "1000000/minute",
        "PHIGATE_LOG_LEVEL": "WARNING",
        **extra,
    }


def raw_env(db: Database) -> dict[str, str]:
    """Where the raw baseline (tests/bench/raw_app.py) finds the bench database."""
    url = db.admin.url
    return {
        "RAW_USER": str(url.username),
        "RAW_DATABASE": str(url.database),
        "RAW_HOST": str(url.query["host"]),
        "RAW_PORT": str(url.query["port"]),
    }


async def reader_session(db: Database) -> tuple[Any, str]:
    """A live session of the bench service (patients:read), for a day: its id and secret."""
    secret, digest = new_secret()
    engine = create_engine(db.admin, pool_size=1, max_overflow=0)
    try:
        async with engine.begin() as connection:
            session_id = await connection.scalar(
                text(
                    "INSERT INTO phigate.sessions (client_id, secret_hash, expires_at)"
                    " VALUES ('bench', :digest, now() + interval '1 day') RETURNING id"
                ),
                {"digest": digest},
            )
    finally:
        await engine.dispose()
    return session_id, secret


def in_process(
    engine: Any, schema: Any, query: str, session: tuple[Any, str]
) -> Callable[[], Awaitable[Any]]:
    """One execution of a document through a schema, as a service reading for
    TREATMENT, in its own request context: what a request costs without HTTP (the
    database still checks the session and sets the row context, as for every request)."""
    from resolvers.context import AccessRequest, RequestContext, RequestMeta

    access = AccessRequest(principal=READER, purpose_header="TREATMENT")
    cipher = bench_cipher()
    session_id, secret = session

    async def once() -> Any:
        opening = SessionOpening(
            session_id, secret, scopes=("patients:read",), idle=timedelta(minutes=15)
        )
        context = RequestContext(
            db=RequestDatabase(engine, opening=opening),
            meta=RequestMeta(request_id="bench"),
            now=datetime.now(UTC),
            access=access,
            cipher=cipher,
        )
        result = await schema.execute(query, context_value=context)
        assert not result.errors, result.errors
        return result

    return once
