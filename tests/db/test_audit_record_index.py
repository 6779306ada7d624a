"""The record index holds each distinct list of records once per transaction: a
request's fields read in the same records are one indexed entry and the rest marked
``record_ids_repeated``. Finding a patient's entries (``db.audit.mentions``: the
accounting of disclosures, the trail's patient filter, the export) must still find every
entry that names the patient, by index, whatever a request wrote."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Text, any_, cast, literal, or_, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncEngine

from db import audit
from db.engine import compile_for_driver
from db.unit_of_work import RequestDatabase

PATIENTS = [uuid.UUID(int=n) for n in range(1, 7)]
# A few lists of records, so that requests repeat them (a page's fields) and overlap.
LISTS = st.lists(st.sampled_from(PATIENTS), min_size=0, max_size=4, unique=True).map(
    lambda ids: sorted(ids, key=lambda i: i.int)
)
ENTRY = st.fixed_dictionaries(
    {
        "field_path": st.sampled_from(
            ["Patient.givenName", "Patient.familyName", "Diagnosis.icd10Code"]
        ),
        "record_ids": LISTS,
        # Entries of one request are written at one time; a few at another.
        "later": st.sampled_from([False, False, False, True]),
        "record_id": st.none() | st.sampled_from([str(PATIENTS[0]), "not-a-uuid"]),
    }
)
# Requests, each one transaction of one or two COPYs of entries.
REQUESTS = st.lists(
    st.lists(st.lists(ENTRY, min_size=1, max_size=5), min_size=1, max_size=2),
    min_size=1,
    max_size=6,
)


def _row(entry: dict[str, Any], at: datetime, request: str) -> dict[str, Any]:
    return {
        "occurred_at": at + timedelta(seconds=1) if entry["later"] else at,
        "category": "ACCESS",
        "action": "READ",
        "outcome": "ALLOWED",
        "actor_id": "actor-synthetic",
        "field_path": entry["field_path"],
        "record_ids": entry["record_ids"],
        "record_id": entry["record_id"],
        "request_id": request,
    }


async def _found(
    engine: AsyncEngine,
    record: str,
    marker: str | None,
    window: tuple[datetime, datetime] | None = None,
) -> tuple[set[int], set[int]]:
    """This run's entries about ``record`` (``marker``: its operation name; ``window``:
    written in it, as [since, until)), by ``mentions`` and by reading every entry."""
    mine = audit.events.c.operation_name.is_not_distinct_from(marker)
    since, until = window or (None, None)
    if window is not None:
        at = audit.events.c.occurred_at
        mine = mine & (at >= since) & (at < until)
    by_index = select(audit.events.c.id).where(
        mine, audit.mentions(record, since=since, until=until)
    )
    listed = literal(record) == any_(cast(audit.events.c.record_ids, ARRAY(Text)))
    every = select(audit.events.c.id).where(mine, or_(listed, audit.events.c.record_id == record))
    async with engine.connect() as connection:
        return (
            set((await connection.execute(by_index)).scalars()),
            set((await connection.execute(every)).scalars()),
        )


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(requests=REQUESTS)
async def test_every_entry_about_a_record_is_found_whatever_was_repeated(
    app_engine: AsyncEngine, requests: list[list[list[dict[str, Any]]]]
) -> None:
    marker = f"run-{uuid.uuid4()}"
    at = datetime.now(UTC).replace(microsecond=0)
    for number, copies in enumerate(requests):
        db = RequestDatabase(app_engine)
        try:
            for entries in copies:
                rows = [_row(entry, at, f"request-{number}") for entry in entries]
                await audit.append(db, [{**row, "operation_name": marker} for row in rows])
            await db.commit()
        finally:
            await db.close()
    for record in (*map(str, PATIENTS), "not-a-uuid"):
        by_index, every = await _found(app_engine, record, marker)
        assert by_index == every, record
        # Within a window (the accounting of disclosures has one): the first time only.
        window = (at, at + timedelta(seconds=1))
        by_index, every = await _found(app_engine, record, marker, window)
        assert by_index == every, record
    async with app_engine.connect() as connection:
        # Each distinct non-empty list, per transaction and time, is indexed exactly
        # once: no list is left out of the index, none indexed twice in one COPY.
        groups = (
            await connection.execute(
                text(
                    "SELECT min(request_id) AS request,"
                    " count(*) FILTER (WHERE NOT record_ids_repeated) AS indexed,"
                    " count(DISTINCT request_id) AS requests"
                    " FROM audit.events WHERE operation_name = :m AND cardinality(record_ids) > 0"
                    " GROUP BY txid, occurred_at, record_ids"
                ),
                {"m": marker},
            )
        ).all()
    for group in groups:
        # Each distinct list, per transaction and time, is indexed at least once (none is
        # left out) and at most once per COPY of its request (none indexed twice).
        assert group.requests == 1
        assert 1 <= group.indexed <= len(requests[int(group.request.split("-")[1])]), group


async def test_finding_a_records_entries_reads_by_index(app_engine: AsyncEngine) -> None:
    """The accounting of disclosures must stay index-driven on a trail of years: with
    sequential scans priced out, its plan reads no partition of the trail whole (an OR
    with a sub-select would: the planner cannot turn it into index probes)."""
    record = str(PATIENTS[0])
    query = select(audit.events.c.id).where(
        audit.mentions(record), audit.events.c.category == "ACCESS"
    )
    compiled = compile_for_driver(query)
    async with app_engine.begin() as connection:
        await connection.execute(text("SET LOCAL enable_seqscan = off"))
        raw = (await connection.get_raw_connection()).driver_connection
        explained = await raw.fetch(f"EXPLAIN {compiled.sql}", *compiled.arguments({}))
    plan = "\n".join(row[0] for row in explained)
    print(plan)
    assert "Seq Scan" not in plan, plan
    assert "record_ids_idx" in plan and "txid_id_idx" in plan, plan


async def test_a_mark_altered_out_of_band_is_named_by_verification(
    app_engine: AsyncEngine, admin_engine: AsyncEngine
) -> None:
    """The mark is not part of an entry's digest (a gateway of the previous build may
    seal marked entries during a rolling upgrade), so verification checks it apart: an
    indexed entry marked as repeating (what a superuser could do to hide a read from the
    accounting of disclosures) is named, while the chain itself still verifies."""
    patient = uuid.uuid4()
    db = RequestDatabase(app_engine)
    try:
        at = datetime.now(UTC)
        rows = [
            _row({"field_path": f, "record_ids": [patient], "later": False, "record_id": None},
                 at, "request-mark")
            for f in ("Patient.givenName", "Patient.familyName")
        ]  # fmt: skip
        await audit.append(db, rows)
        await db.commit()
    finally:
        await db.close()
    assert await audit.seal_all(app_engine) == 2
    assert (await audit.verify(app_engine)).ok
    by_index, _ = await _found(app_engine, str(patient), marker=None)
    assert len(by_index) == 2
    async with admin_engine.begin() as connection:
        await connection.execute(text("SET LOCAL session_replication_role = replica"))
        await connection.execute(
            text(
                "UPDATE audit.events SET record_ids_repeated = true"
                " WHERE request_id = 'request-mark' AND NOT record_ids_repeated"
            )
        )
    by_index, every = await _found(app_engine, str(patient), marker=None)
    assert not by_index and len(every) == 2  # hidden from the index...
    report = await audit.verify(app_engine)
    assert report.first_broken is None and report.links == 2  # ...the chain intact...
    assert not report.ok  # ...and named
    assert any("2 entries are marked as repeating" in problem for problem in report.problems)
