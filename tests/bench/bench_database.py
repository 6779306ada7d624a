"""What one audited planned read costs PostgreSQL, shape by shape, without the gateway:
the statements phigate sends for a person's 10-row read, from asyncpg, on 16
connections at once, with the PostgreSQL server's CPU per read read from /proc (and the
client's, this process's).

- ``four round trips, re-planned``: BEGIN, ``phigate.begin_request``, the read and its
  audit entries, COMMIT, with PostgreSQL's default ``plan_cache_mode`` ('auto'), which
  plans the row-secured read anew at every execution;
- ``four round trips``: the same with one generic plan per connection (phigate's
  connections since 2026-12-03, ``db/engine.py``);
- ``one statement``: the read that checks the session itself
  (``db.audit.read_and_audit`` with ``checked``), as a transaction of its own;
- ``one statement, commit not flushed``: the same with ``synchronous_commit`` off,
  which shows what the durable commit costs (phigate never runs so);
- ``floor: one audit entry, committed``: no check and no read, only what any audited
  read must do at the least, one entry INSERTed and its commit flushed: the database's
  cost of making a read durable, against which a peer that writes nothing is measured.

Then the sequencer seals every entry the shapes wrote (``sealing``): its CPU and
PostgreSQL's per entry, the chain's cost on top of each audited read's.

The shapes take turns, round after round, so the machine's noise falls on all of them.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from db import audit
from db.engine import create_engine
from db.patients import planned_page_audited
from db.sessions import SessionOpening, VerifiedSession
from domain.permissions import RowScope
from domain.roles import Role
from tests.bench.bench_peer import cpu_seconds, postmaster_pid
from tests.bench.harness import Database, bench_identity
from tests.identity import issue_token, token_claims

CONNECTIONS = 16
_IDLE = timedelta(minutes=15)
READS = 200  # per connection and shape, in each round
COLUMNS = ("given_name", "family_name")
FIELDS = (["Patient.givenName", "Patient.familyName"], ["IDENTITY", "IDENTITY"])
_BEGIN = (
    "SELECT subject_kind, actor, role, granted_scopes, row_scope, episode_ids,"
    " episode_patients FROM phigate.begin_request($1, $2, $3, $4, $5, false)"
)
Shape = Callable[[asyncpg.Connection, "Caller"], Awaitable[None]]


class Caller:
    """A billing clerk's session, as the statements take it."""

    def __init__(self, token: str) -> None:
        claims = token_claims(token)
        self.actor = claims["sub"]
        self.session = uuid.UUID(claims["sid"])
        self.secret = claims["ssk"]
        self.opening = SessionOpening(self.session, self.secret, idle=_IDLE)
        self.expected = VerifiedSession("USER", self.actor, "BILLING", (), "ALL", {})

    def values(self) -> dict[str, Any]:
        return {
            "actor": None,
            "limit": 11,
            "occurred_at": datetime.now(UTC),
            "actor_id": self.actor,
            "actor_kind": "USER",
            "role": "BILLING",
            "session_id": self.session,
            "purpose": "PAYMENT",
            "break_glass": False,
            "operation_name": None,
            "document_hash": "0" * 64,
            "client_ip": "127.0.0.1",
            "user_agent": "bench (synthetic)",
            "request_id": uuid.uuid4().hex,
            "audit_fields": FIELDS[0],
            "audit_classes": FIELDS[1],
        }


async def _four_round_trips(connection: asyncpg.Connection, caller: Caller) -> None:
    compiled = planned_page_audited(COLUMNS, RowScope.ALL, False)
    async with connection.transaction():
        found = await connection.fetchrow(_BEGIN, caller.session, caller.secret, [], 900.0, 15.0)
        assert found is not None
        rows = await connection.fetch(compiled.sql, *compiled.arguments(caller.values()))
    assert len(rows) == 11


async def _one_statement(connection: asyncpg.Connection, caller: Caller) -> None:
    compiled = planned_page_audited(COLUMNS, RowScope.ALL, False, True)
    values = {**caller.values(), **caller.opening.checked_by_statement(caller.expected)}
    rows = await connection.fetch(compiled.sql, *compiled.arguments(values))
    assert rows[0]["session_checked"] == 1 and len(rows) == 11


_ONE_ENTRY = (
    "INSERT INTO audit.events (occurred_at, actor_id, actor_kind, role, session_id, purpose,"
    " request_id, category, action, outcome, field_path, data_class, record_ids)"
    " VALUES ($1, $2, 'USER', 'BILLING', $3, 'PAYMENT', $4, 'ACCESS', 'READ', 'ALLOWED',"
    " 'Patient.givenName', 'IDENTITY', $5)"
)
_RECORDS = [uuid.UUID(int=n) for n in range(1, 11)]


async def _one_entry(connection: asyncpg.Connection, caller: Caller) -> None:
    await connection.execute(
        _ONE_ENTRY, datetime.now(UTC), caller.actor, caller.session, uuid.uuid4().hex, _RECORDS
    )


SHAPES: dict[str, tuple[Shape, str]] = {
    "four round trips, re-planned": (_four_round_trips, "SET plan_cache_mode = auto"),
    "four round trips": (_four_round_trips, "SET plan_cache_mode = force_generic_plan"),
    "one statement": (_one_statement, "SET plan_cache_mode = force_generic_plan"),
    "one statement, commit not flushed": (
        _one_statement,
        "SET plan_cache_mode = force_generic_plan; SET synchronous_commit = off",
    ),
    "floor: one audit entry, committed": (_one_entry, "SET plan_cache_mode = force_generic_plan"),
}


async def run(db: Database, *, rounds: int) -> dict[str, Any]:
    rounds = max(1, min(rounds, 3))
    async with bench_identity(db) as identity:
        callers = [Caller(await issue_token(identity, Role.BILLING)) for _ in range(CONNECTIONS)]
    url = db.app.url
    connections = [
        await asyncpg.connect(
            user=url.username,
            database=url.database,
            host=url.query["host"],
            port=int(url.query["port"]),
        )
        for _ in range(CONNECTIONS)
    ]
    server = postmaster_pid(db)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in SHAPES}

    async def stage(name: str, reads: int) -> tuple[float, float]:
        shape, settings = SHAPES[name]
        for connection in connections:
            await connection.execute("RESET ALL; " + settings)

        async def worker(connection: asyncpg.Connection, caller: Caller) -> None:
            for _ in range(reads):
                await shape(connection, caller)

        server_before, client_before = cpu_seconds(server), time.process_time()
        await asyncio.gather(*map(worker, connections, callers))
        done = reads * CONNECTIONS
        return (
            (cpu_seconds(server) - server_before) * 1000 / done,
            (time.process_time() - client_before) * 1000 / done,
        )

    try:
        for name in SHAPES:  # warm-up: plans, caches
            await stage(name, 20)
        names = list(SHAPES)
        for number in range(rounds):
            for name in names[number % len(names) :] + names[: number % len(names)]:
                samples[name].append(await stage(name, READS))
        sealing = await _sealing(db, server)
    finally:
        for connection in connections:
            await connection.close()
    results = {
        name: {
            "postgres_cpu_ms_per_read": round(statistics.median(s[0] for s in measured), 3),
            "client_cpu_ms_per_read": round(statistics.median(s[1] for s in measured), 3),
        }
        for name, measured in samples.items()
    }
    base = results["four round trips, re-planned"]["postgres_cpu_ms_per_read"]
    return {
        "case": "a billing clerk's 10-row audited read (2 PHI fields), straight from asyncpg on"
        f" {CONNECTIONS} connections, {READS} reads each per shape and round, {rounds}"
        " interleaved rounds, medians",
        "results": results,
        "postgres_cpu_vs_re_planned": {
            name: round(result["postgres_cpu_ms_per_read"] / base, 2)
            for name, result in results.items()
        },
        "sealing": sealing,
    }


async def _sealing(db: Database, server: int) -> dict[str, Any]:
    """The sequencer (``db.audit.seal_all``, as a gateway runs it) sealing the entries the
    shapes above wrote, all at once: its own CPU and PostgreSQL's, per entry."""
    engine = create_engine(db.app, pool_size=1, max_overflow=0)
    try:
        async with engine.connect():
            pass  # the connection and the dialect's start-up, not counted
        server_before, client_before = cpu_seconds(server), time.process_time()
        entries = await audit.seal_all(engine)
        client = time.process_time() - client_before
        postgres = cpu_seconds(server) - server_before
    finally:
        await engine.dispose()
    return {
        "entries": entries,
        "sequencer_cpu_us_per_entry": round(client * 1e6 / max(entries, 1), 1),
        "postgres_cpu_us_per_entry": round(postgres * 1e6 / max(entries, 1), 1),
    }
