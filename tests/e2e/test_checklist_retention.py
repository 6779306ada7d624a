"""Checklist C12 (automated retention): phigate deletes what is past retention on a
schedule, by itself, one gateway at a time, audited, never what is on legal hold; the
database's rule is the domain's rule."""

from __future__ import annotations

import time
import uuid
from datetime import date
from pathlib import Path

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from db.embedded import EmbeddedPostgres
from domain import retention as rules
from domain.patients import RetentionClass
from tests.db.test_row_level_security import connect
from tests.e2e.served import serve


@pytest.fixture
async def owner(admin_target):
    connection = await connect(admin_target)
    yield connection
    await connection.close()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kind=st.sampled_from(list(RetentionClass)),
    last_changed=st.dates(date(1990, 1, 1), date(2100, 12, 31)),
    born=st.dates(date(1900, 1, 1), date(2100, 12, 31)),
    days=st.integers(365, 20_000),
    today=st.dates(date(1990, 1, 1), date(2150, 12, 31)),
)
async def test_C12_the_database_rule_is_the_domain_rule(
    owner: asyncpg.Connection,
    kind: RetentionClass,
    last_changed: date,
    born: date,
    days: int,
    today: date,
) -> None:
    in_sql = await owner.fetchval(
        "SELECT phigate.retention_expired($1, $2, $3, $4, $5)",
        kind.value, last_changed, born, days, today,
    )  # fmt: skip
    in_python = rules.is_expired(
        kind, last_changed=last_changed, date_of_birth=born, days=days, today=today
    )
    assert in_sql is in_python


async def test_C12_the_gateway_cannot_choose_the_period_or_the_records(
    app_target, owner: asyncpg.Connection
) -> None:
    """The sweep applies the longer of the database's period (2555 days here) and the
    gateway's: a gateway can keep records longer, never delete them sooner."""
    ids = {}
    for name, age in (("year_old", 1000), ("eight_years", 3000)):
        ids[name] = await owner.fetchval(
            "INSERT INTO phigate.patients (mrn, given_name, family_name, date_of_birth,"
            " created_at, updated_at) VALUES ($1, 'Alpha', 'Synthetic-Retention', '1950-01-01',"
            " now() - make_interval(days => $2), now() - make_interval(days => $2))"
            " RETURNING id",
            f"DEMO-RET-{age}",
            age,
        )
    app = await connect(app_target)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await app.execute("UPDATE phigate.retention_policy SET days = 365")
        # A gateway configured for ten years keeps the eight-year-old record.
        assert await app.fetch("SELECT phigate.retention_sweep(10, 3650)") == []
        # One asking for a single year gets the database's seven: the eight-year-old
        # record goes, the year-old one stays.
        swept = await app.fetch("SELECT phigate.retention_sweep(10, 365)")
        assert [row[0] for row in swept] == [ids["eight_years"]]
        assert await app.fetchval("SELECT days FROM phigate.retention_policy") == 2555
    finally:
        await app.close()
    assert (
        await owner.fetchval("SELECT count(*) FROM phigate.patients WHERE id = $1", ids["year_old"])
        == 1
    )


def _insert(
    postgres: EmbeddedPostgres, database: str, mrn: str, *, changed: str, held: bool
) -> str:
    patient = str(uuid.uuid4())
    postgres.psql(
        "INSERT INTO phigate.patients (id, mrn, given_name, family_name, date_of_birth,"
        f" legal_hold, created_at, updated_at) VALUES ('{patient}', '{mrn}', 'Alpha',"
        f" 'Synthetic-Retention', '1950-01-01', {str(held).lower()}, {changed}, {changed})",
        database=database,
    )
    return patient


def test_C12_a_running_gateway_deletes_expired_records_by_itself(
    postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    with serve(postgres, tmp_path, PHIGATE_RETENTION_INTERVAL_SECONDS="1") as served:
        db = served.database
        long_ago = "now() - interval '2556 days'"
        expired = _insert(postgres, db, "DEMO-RET-001", changed=long_ago, held=False)
        held = _insert(postgres, db, "DEMO-RET-002", changed=long_ago, held=True)
        recent = _insert(
            postgres, db, "DEMO-RET-003", changed="now() - interval '2554 days'", held=False
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            left = postgres.psql(
                f"SELECT count(*) FROM phigate.patients WHERE id = '{expired}'", database=db
            )
            if left.strip() == "0":
                break
            time.sleep(0.5)
        else:
            raise AssertionError("the expired record was not swept within 30 s")
        remaining = postgres.psql(
            f"SELECT id FROM phigate.patients WHERE id IN ('{held}', '{recent}') ORDER BY mrn",
            database=db,
        ).split()
        assert remaining == [held, recent]
        entries = postgres.psql(
            "SELECT action, outcome, actor_kind, actor_id, reason, array_length(record_ids, 1)"
            f" FROM audit.events WHERE '{expired}' = ANY(record_ids)",
            database=db,
        ).splitlines()
        assert entries == ["DELETE|ALLOWED|SYSTEM|phigate:retention-schedule|RETENTION_EXPIRED|1"]
        # Nothing about the held or the recent record.
        assert (
            postgres.psql(
                f"SELECT count(*) FROM audit.events WHERE '{held}' = ANY(record_ids)"
                f" OR '{recent}' = ANY(record_ids)",
                database=db,
            ).strip()
            == "0"
        )
