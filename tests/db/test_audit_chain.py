"""Tamper evidence: append-only even for the owner; the hash chain names the first
entry altered, removed or reordered out of band; signed checkpoints catch a consistent
rewrite; several writers and sealers at once stay correct."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import exists, insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from db import audit
from db.embedded import EmbeddedPostgres
from domain.audit import chain_link, entry_digest

INSERT = text(
    "INSERT INTO audit.events (category, action, outcome, actor_id, field_path, record_id, request_id)"
    " SELECT 'ACCESS', 'READ', 'ALLOWED', 'actor-' || n, 'Patient.ssn', 'record-' || n, 'request-' || n"
    " FROM generate_series(1, :count) AS n"
)


async def write(engine: AsyncEngine, count: int) -> None:
    async with engine.begin() as connection:
        await connection.execute(INSERT, {"count": count})


async def as_superuser_bypassing_triggers(admin_engine: AsyncEngine, statement: str) -> None:
    """What a superuser could do: switch triggers off for the session and edit."""
    async with admin_engine.begin() as connection:
        await connection.execute(text("SET LOCAL session_replication_role = replica"))
        await connection.execute(text(statement))


async def sealed_entries(engine: AsyncEngine) -> list[Any]:
    """Every entry as stored, with the digest its link recorded (``entry_hash``)."""
    async with engine.connect() as connection:
        joined = select(audit.events, audit.chain.c.entry_hash).join(
            audit.chain, audit.chain.c.event_id == audit.events.c.id
        )
        return list((await connection.execute(joined)).all())


async def test_sealed_entries_verify(app_engine: AsyncEngine) -> None:
    await write(app_engine, 25)
    assert await audit.seal_all(app_engine) == 25
    report = await audit.verify(app_engine)
    assert report.ok and report.links == 25 and report.unsealed == 0
    assert await audit.seal_all(app_engine) == 0  # nothing is sealed twice


async def test_record_lists_are_sealed_as_the_stored_arrays_digest(
    app_engine: AsyncEngine,
) -> None:
    """The sequencer and verification read an entry's record ids as text; the digest must
    be the one computed from the stored uuid[] itself (as every earlier build sealed it),
    for lists of one, several and no ids, and for what no build writes but the column
    allows: a NULL id, and an array of two dimensions."""
    insert = (
        "INSERT INTO audit.events (category, action, outcome, actor_id, field_path,"
        " record_ids, request_id)"
        " SELECT 'ACCESS', 'READ', 'ALLOWED', 'actor-synthetic', 'Patient.givenName', {ids},"
        " 'request-' || n FROM unnest(ARRAY[{counts}]) AS n"
    )
    async with app_engine.begin() as connection:
        listed = "ARRAY(SELECT gen_random_uuid() FROM generate_series(1, n))"
        await connection.execute(text(insert.format(ids=listed, counts="0, 1, 3, 100")))
        with_null = "ARRAY[gen_random_uuid(), NULL]"
        await connection.execute(text(insert.format(ids=with_null, counts="2")))
        nested = "ARRAY[[gen_random_uuid(), gen_random_uuid()], [gen_random_uuid(), NULL]]"
        await connection.execute(text(insert.format(ids=nested, counts="4")))
    assert await audit.seal_all(app_engine) == 6
    stored = await sealed_entries(app_engine)
    assert sorted(len(row.record_ids) for row in stored) == [0, 1, 2, 2, 3, 100]
    for row in stored:
        assert entry_digest(row._mapping) == row.entry_hash
    assert (await audit.verify(app_engine)).ok


async def test_every_field_is_sealed_as_the_stored_entry_digests(
    admin_engine: AsyncEngine, app_engine: AsyncEngine
) -> None:
    """The sequencer computes digests from its own read by position, making plain only
    the fields whose column is not text, a number or a truth value; verification and
    every earlier build compute them from the entry as stored. Every field, set and
    unset, with text JSON escapes (non-ASCII, DEL, quotes), times on a whole second and
    written in another zone, a break-glass episode: the same digests."""
    rows = [
        {"user_agent": "agent \u00e9\u4e2d \x7f \"quoted\" (synthetic)", "break_glass": True,
         "session_id": uuid.uuid4(), "break_glass_episode_id": uuid.uuid4(),
         "occurred_at": datetime(2026, 12, 3, 9, 30, 0, 0, tzinfo=UTC)},
        {"operation_name": "SyntheticRead", "reason": "CONSENT_REVOKED", "record_id": "rec-1",
         "request_id": "request-synthetic", "actor_kind": "SERVICE", "role": None,
         "subject_hash": "b" * 64, "client_ip": "::1", "purpose": "TREATMENT",
         "occurred_at": datetime(2026, 12, 3, 4, 0, 0, 1, tzinfo=timezone(timedelta(hours=-5)))},
        {"record_ids": [uuid.uuid4() for _ in range(3)], "document_hash": "c" * 64,
         "role": "CLINICIAN", "actor_kind": "USER", "data_class": "IDENTITY",
         "outcome": "DENIED", "action": "WRITE", "category": "SECURITY"},
        {"actor_id": None, "field_path": None},
    ]  # fmt: skip
    required = {"category": "ACCESS", "action": "READ", "outcome": "ALLOWED"}
    given = {"actor_id": "actor-synthetic", "field_path": "Patient.givenName"}
    async with admin_engine.begin() as connection:
        for extra in rows:
            await connection.execute(insert(audit.events).values({**required, **given, **extra}))
    assert await audit.seal_all(app_engine) == len(rows)
    stored = await sealed_entries(app_engine)
    assert len(stored) == len(rows)
    for row in stored:
        assert entry_digest(row._mapping) == row.entry_hash
    assert (await audit.verify(app_engine)).ok


async def test_the_sequencer_reads_unsealed_entries_without_parallel_workers(
    admin_engine: AsyncEngine, app_target, database: str
) -> None:
    """Found with pg_stat_statements under the peer benchmark: the planner chose a
    parallel plan for the sequencer's read of a few hundred unsealed entries, and
    starting its workers cost ten times the read. Here the database is set to favour
    parallel plans: in a plain transaction the read is parallel; in the sequencer's, not."""
    from db.engine import create_engine

    async with admin_engine.connect() as connection:
        for setting in (
            "parallel_setup_cost = 0", "parallel_tuple_cost = 0",
            "min_parallel_table_scan_size = 0", "min_parallel_index_scan_size = 0",
        ):  # fmt: skip
            await connection.execute(text(f'ALTER DATABASE "{database}" SET {setting}'))
        await connection.commit()
    engine = create_engine(app_target, pool_size=1, max_overflow=0)
    try:
        await write(engine, 300)
        compiled = audit._FINISHED_AFTER.compile(dialect=engine.dialect)
        values = {**compiled.params, "txid": 0, "id": 0, "batch": 5000}
        explain = "EXPLAIN " + str(compiled)
        arguments = tuple(values[name] for name in compiled.positiontup or ())

        async def plan(prepare: Any) -> str:
            async with engine.begin() as connection:
                if prepare is not None:
                    assert await connection.scalar(prepare, {"k": audit.SEQUENCER_LOCK})
                rows = await connection.exec_driver_sql(explain, arguments)
                return "\n".join(row[0] for row in rows)

        assert "Gather" in await plan(None)  # the test's premise: a parallel plan
        assert "Gather" not in await plan(audit._SEQUENCE)
        assert await audit.seal_all(engine) == 300
        assert (await audit.verify(engine)).ok
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit.events SET action = 'WRITE' WHERE request_id = 'request-3'",
        "DELETE FROM audit.events WHERE request_id = 'request-3'",
        "TRUNCATE audit.events",
        "UPDATE audit.chain SET chain_hash = repeat('0', 64) WHERE seq = 3",
        "DELETE FROM audit.chain WHERE seq = 3",
    ],
)
async def test_append_only_even_for_the_owner_and_superuser(
    app_engine: AsyncEngine, admin_engine: AsyncEngine, statement: str
) -> None:
    await write(app_engine, 5)
    await audit.seal_all(app_engine)
    with pytest.raises(DBAPIError, match="append-only"):
        async with admin_engine.begin() as connection:
            await connection.execute(text(statement))


@pytest.mark.parametrize(
    ("tamper", "named"),
    [
        (
            "UPDATE audit.events SET field_path = 'Patient.givenName' WHERE request_id = 'request-7'",
            "link 7: audit entry",
        ),
        (
            "UPDATE audit.events SET occurred_at = occurred_at - interval '1 day' WHERE request_id = 'request-7'",
            "link 7",
        ),
        ("DELETE FROM audit.events WHERE request_id = 'request-7'", "link 7: its audit entry"),
        ("DELETE FROM audit.chain WHERE seq = 7", "link 7 is missing"),
        (
            "UPDATE audit.chain SET entry_hash = CASE seq WHEN 7 THEN (SELECT entry_hash FROM audit.chain WHERE seq = 8)"
            " ELSE (SELECT entry_hash FROM audit.chain WHERE seq = 7) END WHERE seq IN (7, 8)",
            "link 7",
        ),
    ],
    ids=["altered", "redated", "removed", "link-removed", "reordered"],
)
async def test_out_of_band_tampering_is_named(
    app_engine: AsyncEngine, admin_engine: AsyncEngine, tamper: str, named: str
) -> None:
    await write(app_engine, 12)
    await audit.seal_all(app_engine)
    await as_superuser_bypassing_triggers(admin_engine, tamper)
    report = await audit.verify(app_engine)
    assert not report.ok
    assert report.first_broken is not None and report.first_broken.startswith(named), (
        report.first_broken
    )
    assert report.links == 6  # everything before the break verified


async def test_a_consistent_rewrite_is_caught_by_the_checkpoint(
    app_engine: AsyncEngine, admin_engine: AsyncEngine
) -> None:
    """A superuser who alters an entry and recomputes every later link defeats the chain
    alone; a checkpoint taken before (and kept elsewhere) does not agree any more."""
    from domain.audit import GENESIS

    await write(app_engine, 10)
    await audit.seal_all(app_engine)
    count, head_hash = await audit.head(app_engine)
    await audit.store_checkpoint(
        app_engine, count=count, head_hash=head_hash, signed="kept-elsewhere-too"
    )
    await as_superuser_bypassing_triggers(
        admin_engine,
        "UPDATE audit.events SET actor_id = 'someone-else' WHERE request_id = 'request-2'",
    )
    async with admin_engine.begin() as connection:
        await connection.execute(text("SET LOCAL session_replication_role = replica"))
        rows = (
            await connection.execute(
                text(
                    "SELECT c.seq, e.* FROM audit.chain c JOIN audit.events e ON e.id = c.event_id ORDER BY c.seq"
                )
            )
        ).all()
        previous = GENESIS
        for row in rows:
            digest = entry_digest(row._mapping)
            previous = chain_link(previous, digest)
            await connection.execute(
                text("UPDATE audit.chain SET entry_hash = :d, chain_hash = :h WHERE seq = :s"),
                {"d": digest, "h": previous, "s": row.seq},
            )
    report = await audit.verify(app_engine)
    assert report.first_broken is None  # the chain itself was rebuilt consistently...
    assert report.problems == [
        "checkpoint 1 (at link 10) no longer matches the chain"
    ]  # ...the checkpoint was not


async def test_concurrent_writers_and_sealers_make_one_valid_chain(
    app_engine: AsyncEngine, app_target
) -> None:
    from db.engine import create_engine

    other = create_engine(app_target, pool_size=4, max_overflow=0)
    try:
        writers = [write(engine, 20) for engine in (app_engine, other) for _ in range(6)]
        sealers = [audit.seal_all(engine) for engine in (app_engine, other) for _ in range(3)]
        await asyncio.gather(*writers, *sealers)
        await audit.seal_all(other)
        report = await audit.verify(app_engine)
        assert report.ok and report.links == 240 and report.unsealed == 0
    finally:
        await other.dispose()


async def test_an_entry_committed_late_is_sealed_and_nothing_behind_it_is_skipped(
    app_engine: AsyncEngine,
) -> None:
    """A transaction that wrote an entry and has not committed holds the sequencer back
    (entries of later transactions wait too); once it commits, all are sealed in order."""
    await write(app_engine, 3)
    async with app_engine.connect() as slow:
        await slow.begin()
        await slow.execute(INSERT, {"count": 1})
        await write(app_engine, 4)  # committed after the slow one began writing
        assert await audit.seal_all(app_engine) == 3
        await slow.commit()
    assert await audit.seal_all(app_engine) == 5
    report = await audit.verify(app_engine)
    assert report.ok and report.links == 8 and report.unsealed == 0


async def test_sealing_reads_only_what_is_new(app_engine: AsyncEngine) -> None:
    """Each pass starts after the last link: the plan reads the (txid, id) index, not the
    trail compared against the chain."""
    await write(app_engine, 10)
    await audit.seal_all(app_engine)
    async with app_engine.connect() as connection:
        plan = "\n".join(
            row[0]
            for row in await connection.execute(
                text(
                    "EXPLAIN SELECT * FROM audit.events"
                    " WHERE txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
                    " AND (txid, id) > (1, 1) ORDER BY txid, id LIMIT 5000"
                )
            )
        )
    assert "ix_events_txid_id" in plan or "txid_id_idx" in plan, plan
    assert "chain" not in plan


async def test_sealing_stops_once_caught_up_while_entries_keep_arriving(
    app_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found measuring the sequencer's backend apart under served load: it sealed a few
    hundred entries a pass, pass after pass, because it stopped only when a pass found
    nothing, and under load something new had always committed meanwhile. Each pass is a
    transaction of its own (the lock, the chain's head, the read, the COPY, a durable
    commit): the database spent five times as much per entry as on one pass of many. A
    pass that finds fewer than a batch is caught up: the next comes at the interval."""
    passes = 0
    seal = audit._seal

    async def counted(engine: AsyncEngine, batch: int) -> tuple[int, bool]:
        nonlocal passes
        passes += 1
        return await seal(engine, batch)

    monkeypatch.setattr(audit, "_seal", counted)
    stop = asyncio.Event()

    async def trickle() -> int:
        written = 0
        while not stop.is_set() and written < 2000:
            await write(app_engine, 1)
            written += 1
        return written

    writer = asyncio.create_task(trickle())
    try:
        await write(app_engine, 5)
        await asyncio.sleep(0.05)  # the writer is under way
        sealed = await audit.seal_all(app_engine)
        assert not writer.done()
        assert sealed >= 5 and passes == 1
    finally:
        stop.set()
        written = await writer
    assert written < 2000
    await audit.seal_all(app_engine)
    report = await audit.verify(app_engine)
    assert report.ok and report.unsealed == 0


async def test_a_connection_the_database_ended_while_sealing_is_not_used_again(
    admin_engine: AsyncEngine, app_target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sequencer reads and writes the chain through the driver, under SQLAlchemy's
    transaction: when the connection dies under it, the rollback on the way out finds
    it gone and the pool drops it, so the next pass (one connection in the pool) gets a
    new one rather than the dead one."""
    from db.engine import create_engine

    engine = create_engine(app_target, pool_size=1, max_overflow=0)
    read = audit._finished_after

    async def ended_first(connection: Any, after: Any) -> list[Any]:
        pid = await connection.scalar(text("SELECT pg_backend_pid()"))
        async with admin_engine.begin() as admin:
            await admin.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        monkeypatch.setattr(audit, "_finished_after", read)
        return await read(connection, after)

    try:
        await write(engine, 3)
        monkeypatch.setattr(audit, "_finished_after", ended_first)
        with pytest.raises(Exception):  # noqa: B017, PT011 - whatever the driver raises
            await audit.seal_all(engine)
        assert await audit.seal_all(engine) == 3
        assert (await audit.verify(engine)).ok
    finally:
        await engine.dispose()


async def test_entries_written_before_they_carried_a_txid_are_sealed_first(
    app_engine: AsyncEngine, admin_engine: AsyncEngine
) -> None:
    """Entries from before revision 0014 have no txid: sealed once, the old way, and the
    sequencer then carries on by transaction."""
    await as_superuser_bypassing_triggers(
        admin_engine,
        "INSERT INTO audit.events (category, action, outcome, request_id, txid)"
        " SELECT 'SECURITY', 'LOGIN', 'ALLOWED', 'legacy-' || n, NULL"
        " FROM generate_series(1, 3) AS n",
    )
    await write(app_engine, 2)
    assert await audit.seal_all(app_engine) == 5
    await write(app_engine, 2)
    assert await audit.seal_all(app_engine) == 2
    report = await audit.verify(app_engine)
    assert report.ok and report.links == 7 and report.unsealed == 0


async def test_a_writer_cannot_choose_an_entrys_txid(app_engine: AsyncEngine) -> None:
    """An entry filed below the sequencer's position would never be sealed: the
    database, not the writer, says which transaction wrote it (the application role may
    not name the column; it takes its default)."""
    await write(app_engine, 2)
    await audit.seal_all(app_engine)
    with pytest.raises(DBAPIError, match="permission denied"):
        async with app_engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO audit.events (category, action, outcome, request_id, txid)"
                    " VALUES ('ACCESS', 'READ', 'ALLOWED', 'request-forged', 1)"
                )
            )
    async with app_engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO audit.events (category, action, outcome, request_id)"
                " VALUES ('ACCESS', 'READ', 'ALLOWED', 'request-honest')"
            )
        )
    async with app_engine.connect() as connection:
        txid = await connection.scalar(
            text("SELECT txid FROM audit.events WHERE request_id = 'request-honest'")
        )
    assert txid is not None and txid > 1
    assert await audit.seal_all(app_engine) == 1


async def test_entries_left_unsealed_too_long_fail_verification(
    app_engine: AsyncEngine, admin_engine: AsyncEngine
) -> None:
    async with app_engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO audit.events (occurred_at, category, action, outcome, request_id)"
                " VALUES (now() - interval '2 hours', 'ACCESS', 'READ', 'ALLOWED', 'request-old')"
            )
        )
    report = await audit.verify(app_engine)
    assert not report.ok and report.unsealed_overdue == 1
    assert "not sealed" in report.problems[0]
    await audit.seal_all(app_engine)
    assert (await audit.verify(app_engine)).ok


async def test_sealing_resumes_when_transaction_ids_went_backwards(
    app_engine: AsyncEngine,
) -> None:
    """After the trail is restored into another cluster its transaction ids start lower
    than the last link's: the sequencer starts over rather than wait forever."""
    await write(app_engine, 1)
    async with app_engine.begin() as connection:
        head = await audit._head(connection)
        rows = (await connection.execute(select(audit.events))).all()
        links = [{**link, "event_txid": 2**62} for link in audit.chain_links(head, rows)]
        await connection.execute(insert(audit.chain), links)
    await write(app_engine, 2)
    assert await audit.seal_all(app_engine) == 2
    report = await audit.verify(app_engine)
    assert report.ok and report.links == 3 and report.unsealed == 0


async def sealed_by_an_older_gateway(engine: AsyncEngine) -> int:
    """What a gateway from before revision 0014 does while a rolling upgrade runs: seal
    by time, comparing against the chain, recording no txid."""
    events, chain = audit.events, audit.chain
    async with engine.begin() as connection:
        head = await audit._head(connection)
        rows = await connection.execute(
            select(events)
            .where(~exists(select(1).where(chain.c.event_id == events.c.id)))
            .order_by(events.c.occurred_at, events.c.id)
        )
        links = [{**link, "event_txid": None} for link in audit.chain_links(head, rows.all())]
        await connection.execute(insert(chain), links)
    return len(links)


async def test_a_rolling_upgrade_with_an_older_sealer_seals_nothing_twice(
    app_engine: AsyncEngine,
) -> None:
    await write(app_engine, 3)
    assert await audit.seal_all(app_engine) == 3
    await write(app_engine, 4)
    assert await sealed_by_an_older_gateway(app_engine) == 4
    await write(app_engine, 2)
    assert await audit.seal_all(app_engine) == 2
    report = await audit.verify(app_engine)
    assert report.ok and report.links == 9 and report.unsealed == 0


async def test_whole_expired_months_are_dropped_and_the_chain_still_verifies(
    app_engine: AsyncEngine, admin_engine: AsyncEngine
) -> None:
    async with admin_engine.begin() as connection:
        await connection.execute(text("SELECT audit.ensure_month('2010-01-01')"))
        await connection.execute(
            text(
                "INSERT INTO audit.events (occurred_at, category, action, outcome, request_id) VALUES ('2010-01-15T12:00:00Z', 'ACCESS', 'READ', 'ALLOWED', 'old')"
            )
        )
    await audit.seal_all(app_engine)
    await write(app_engine, 3)
    await audit.seal_all(app_engine)
    now = datetime.now(UTC)
    from datetime import timedelta

    expired = await audit.expired_months(app_engine, retention=timedelta(days=2555), now=now)
    assert [(m.partition, m.entries, m.unsealed) for m in expired] == [("events_2010_01", 1, 0)]
    with pytest.raises(DBAPIError):  # the gateway's role cannot drop anything
        await audit.drop_month(app_engine, expired[0], dropped_by="test")
    await audit.drop_month(admin_engine, expired[0], dropped_by="test")
    report = await audit.verify(app_engine)
    assert report.ok and report.links == 3
    assert await audit.expired_months(app_engine, retention=timedelta(days=2555), now=now) == []


def test_verify_and_checkpoint_from_the_cli(
    postgres: EmbeddedPostgres,
    database: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    from graph.cli import main
    from tests.conftest import BLIND_INDEX_KEY, MASTER_KEY

    monkeypatch.setenv(
        "DATABASE_URL", postgres.app_target(database).url.render_as_string(hide_password=False)
    )
    monkeypatch.setenv(
        "PHIGATE_MIGRATION_DATABASE_URL",
        postgres.admin_target(database).url.render_as_string(hide_password=False),
    )
    monkeypatch.setenv("PHIGATE_MASTER_KEY", MASTER_KEY)
    monkeypatch.setenv("PHIGATE_BLIND_INDEX_KEY", BLIND_INDEX_KEY)
    postgres.psql(INSERT.text.replace(":count", "5"), database=database)
    kept = tmp_path / "checkpoint.json"
    assert main(["audit", "checkpoint", "--output", str(kept)]) == 0
    checkpoint = json.loads(kept.read_text())
    assert checkpoint["count"] == 5 and checkpoint["signed"].count(".") == 2
    assert main(["audit", "verify", "--checkpoint", str(kept)]) == 0
    assert json.loads(capsys.readouterr().out.split("\n}\n")[-2] + "\n}")["ok"] is True

    postgres.psql(
        "SET session_replication_role = replica",
        "UPDATE audit.events SET actor_id = 'x' WHERE request_id = 'request-4'",
        database=database,
    )
    assert main(["audit", "verify"]) == 1
    assert "link 4: audit entry" in capsys.readouterr().err

    forged = {**checkpoint, "signed": checkpoint["signed"][:-4] + "AAAA"}
    kept.write_text(json.dumps(forged))
    assert main(["audit", "verify", "--checkpoint", str(kept)]) == 1


def test_export_writes_json_lines_and_is_itself_recorded(
    postgres: EmbeddedPostgres,
    database: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    from graph.cli import main
    from tests.conftest import BLIND_INDEX_KEY, MASTER_KEY

    monkeypatch.setenv(
        "DATABASE_URL", postgres.app_target(database).url.render_as_string(hide_password=False)
    )
    monkeypatch.setenv("PHIGATE_MASTER_KEY", MASTER_KEY)
    monkeypatch.setenv("PHIGATE_BLIND_INDEX_KEY", BLIND_INDEX_KEY)
    postgres.psql(INSERT.text.replace(":count", "4"), database=database)
    out = tmp_path / "audit.jsonl"
    assert main(["audit", "export", "--actor", "actor-2", "--output", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["record_id"] for line in lines] == ["record-2"]
    recorded = postgres.psql(
        "SELECT action || ':' || reason FROM audit.events WHERE category = 'SECURITY'",
        database=database,
    )
    assert recorded == "AUDIT_EXPORTED:ENTRIES:1"
