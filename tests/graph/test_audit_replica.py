"""PHIGATE_AUDIT_READ_DATABASE_URL: the audit review queries read a replica, while the
review itself is recorded, like every request, on the primary. (Here the "replica" is
the same database reached through its own pool: what is shown is the routing.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from db.engine import DatabaseTarget
from domain.purposes import Purpose
from domain.roles import Role
from graph.settings import Settings
from tests.conftest import FAST_HASHING, TEST_KEYS, AsRole, StatementCounter
from tests.graph.test_audit_queries import EVENTS

PERIOD = {"from": "2026-01-01T00:00:00Z", "to": "2027-12-31T00:00:00Z"}
REVIEWS = {
    "auditEvents": (EVENTS, {}),
    "phiAccessSummary": (
        "query($u: String!) { phiAccessSummary(userId: $u) { patientId accesses } }",
        {"u": "00000000-0000-4000-8000-000000000001"},
    ),
    "accountingOfDisclosures": (
        "query($p: ID!, $from: DateTime!, $to: DateTime!)"
        " { accountingOfDisclosures(patientId: $p, from: $from, to: $to) { occurredAt } }",
        {"p": "00000000-0000-4000-8000-000000000002", **PERIOD},
    ),
    "complianceStatistics": ("{ complianceStatistics(days: 7) { failedLogins } }", {}),
    "auditAnomalies": ("{ auditAnomalies(days: 7) { kind } }", {}),
}


@pytest.fixture
def settings(app_target: DatabaseTarget) -> Settings:
    replica = app_target.url.set(drivername="postgresql").render_as_string(hide_password=False)
    return Settings(**TEST_KEYS, **FAST_HASHING, audit_read_database_url=replica)


@pytest.fixture
def replica_statements(app: Starlette) -> Iterator[StatementCounter]:
    counter = StatementCounter()
    engine = app.state.audit_read_engine.sync_engine
    event.listen(engine, "before_cursor_execute", counter)
    yield counter
    event.remove(engine, "before_cursor_execute", counter)


async def test_review_queries_read_the_replica_and_are_recorded_on_the_primary(
    as_role: AsRole, replica_statements: StatementCounter, app_engine: AsyncEngine
) -> None:
    auditor = await as_role(Role.AUDITOR, Purpose.COMPLIANCE)
    for name, (query, variables) in REVIEWS.items():
        before = replica_statements.count
        (await auditor(query, variables)).ok()
        sent = replica_statements.statements[before:]
        assert sent, f"{name} did not read the replica"
        assert all(s.lstrip().upper().startswith(("SELECT", "WITH")) for s in sent), sent
    async with app_engine.connect() as connection:
        recorded = await connection.scalar(
            text("SELECT count(*) FROM audit.events WHERE action = 'AUDIT_QUERY'")
        )
    assert recorded >= len(REVIEWS)


async def test_patient_reads_stay_on_the_primary(
    as_role: AsRole, replica_statements: StatementCounter
) -> None:
    clinician = await as_role(Role.CLINICIAN, Purpose.TREATMENT)
    (await clinician("{ patients(first: 5) { edges { node { id } } } }")).ok()
    assert replica_statements.count == 0
