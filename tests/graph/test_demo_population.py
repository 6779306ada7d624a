"""The demo population (`phigate seed-demo`, `serve --demo`): 3,000 synthetic patients,
seeded in one statement per table, whose de-identified counts release cells for every
dimension and withhold some; the first 50, which the README and tests name, unchanged."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.demo import (
    DEMO_PATIENTS,
    NAMED_PATIENTS,
    seed_demo,
    synthetic_consents,
    synthetic_diagnoses,
    synthetic_patient,
)
from domain.deidentification import Dimension
from domain.patients import RetentionClass, icd10_rule
from domain.purposes import Purpose
from domain.retention import MIN_RETENTION_DAYS, is_expired
from domain.roles import Role
from tests.conftest import AsRole, StatementCounter, cipher_for_tests

COUNTS = """query($by: AnalyticsDimension!) {
  deidentifiedCounts(by: $by) { total cells { key patients suppressed } }
}"""
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# The first 50 patients and their diagnoses as the 50-patient demo generated them.
NAMED_FINGERPRINT = "0685748fd2d2e781caf1e3d804a2e195357a706a7482a5955d71eb506695000b"


def test_the_first_fifty_patients_are_the_ones_the_readme_names() -> None:
    rows: list[dict[str, object]] = []
    for n in range(1, NAMED_PATIENTS + 1):
        patient = synthetic_patient(n, now=NOW)
        rows += [patient, *synthetic_diagnoses(n, patient)]
        consents = synthetic_consents(n, patient)
        assert [(c["consent_type"], c["status"]) for c in consents] == [("TREATMENT", "GRANTED")]
    digest = hashlib.sha256(json.dumps(rows, default=str, sort_keys=True).encode()).hexdigest()
    assert digest == NAMED_FINGERPRINT


def test_every_demo_value_is_obviously_fake_and_valid() -> None:
    mrns, ssns = set(), set()
    for n in range(1, DEMO_PATIENTS + 1):
        patient = synthetic_patient(n, now=NOW)
        assert patient["ssn"].startswith("9")  # never issued
        assert patient["phone"][5:10] == "55501"  # 555-0100 to 0199: fiction
        assert patient["email"].endswith("@example.test")
        assert patient["family_name"].startswith("Synthetic-")
        mrns.add(patient["mrn"])
        ssns.add(patient["ssn"])
        born = patient["date_of_birth"]
        for diagnosis in synthetic_diagnoses(n, patient):
            assert icd10_rule(diagnosis["icd10_code"]) is None
            assert born <= diagnosis["onset_date"] <= patient["created_at"].date()
        # Seeded days ago at most: even the shortest retention period is far off.
        kind = RetentionClass(patient.get("retention_class", "STANDARD"))
        assert not is_expired(
            kind,
            last_changed=patient["updated_at"].date(),
            date_of_birth=born,
            days=MIN_RETENTION_DAYS,
            today=NOW.date() + timedelta(days=300),
        )
    assert len(mrns) == DEMO_PATIENTS and len(ssns) > DEMO_PATIENTS * 0.99


@pytest.fixture
async def demo(admin_engine: AsyncEngine) -> StatementCounter:
    """The default demo, seeded as `phigate seed-demo` does; the statements it sent."""
    counter = StatementCounter()
    event.listen(admin_engine.sync_engine, "before_cursor_execute", counter)
    async with admin_engine.begin() as connection:
        report = await seed_demo(connection, cipher=cipher_for_tests(), now=datetime.now(UTC))
    event.remove(admin_engine.sync_engine, "before_cursor_execute", counter)
    assert report.patients == DEMO_PATIENTS
    return counter


async def test_seeding_sends_one_insert_per_table_not_one_per_patient(
    demo: StatementCounter, admin_engine: AsyncEngine
) -> None:
    assert demo.count < 20, demo.statements
    async with admin_engine.connect() as connection:
        held = await connection.scalar(
            text(
                "SELECT count(*) FROM phigate.patients p JOIN phigate.legal_hold_events e"
                " ON e.patient_id = p.id WHERE p.legal_hold AND e.action = 'SET'"
            )
        )
        minors = await connection.scalar(
            text("SELECT count(*) FROM phigate.patients WHERE retention_class = 'MINOR'")
        )
        opted_out = await connection.scalar(
            text(
                "SELECT count(*) FROM phigate.consents"
                " WHERE consent_type = 'RESEARCH' AND status = 'REVOKED'"
            )
        )
    assert held == 3 and minors > 300 and opted_out > 100


async def test_every_dimension_releases_cells_and_withholds_some(
    demo: StatementCounter, as_role: AsRole
) -> None:
    analyst = await as_role(Role.ANALYST, Purpose.RESEARCH)
    answers = {}
    for dimension in Dimension:
        answer = (await analyst(COUNTS, {"by": dimension.value})).ok()["deidentifiedCounts"]
        released = [cell for cell in answer["cells"] if not cell["suppressed"]]
        withheld = [cell for cell in answer["cells"] if cell["suppressed"]]
        assert len(released) >= 5 and withheld, dimension
        answers[dimension] = answer
    # The README's analyst example: ten bands, 90+ under 11 and 80-89 its complement;
    # the research opt-outs are not counted.
    by_age = answers[Dimension.AGE_BAND]
    assert [cell["patients"] for cell in by_age["cells"]] == [
        *(272, 234, 338, 376, 375, 414, 398, 262),
        *(None, None),
    ]
    assert [cell["key"] for cell in by_age["cells"]][-2:] == ["80-89", "90+"]
    assert by_age["total"] == answers[Dimension.ZIP3]["total"] == 2846
    areas = {cell["key"]: cell["patients"] for cell in answers[Dimension.ZIP3]["cells"]}
    assert areas["000"] and areas["054"] is None and areas["591"] is None
