"""De-identified analytics: Safe Harbor cells only, small cells withheld, for analysts
declaring RESEARCH or OPERATIONS; no path back to a record."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.demo import seed_demo
from domain.deidentification import age_band, protect, zip3
from domain.purposes import Purpose
from domain.roles import Role
from tests.conftest import AsRole, cipher_for_tests

# Patients whose latest research consent is a revocation are never counted.
COUNTED = """NOT coalesce((SELECT c.status = 'REVOKED' FROM phigate.consents c
  WHERE c.patient_id = {} AND c.consent_type = 'RESEARCH'
  ORDER BY c.effective_date DESC, c.recorded_at DESC LIMIT 1), false)"""
COUNTS = """query($by: AnalyticsDimension!) {
  deidentifiedCounts(by: $by) { dimension method minimumCellSize cells { key patients suppressed } }
}"""


@pytest.fixture
async def population(admin_engine: AsyncEngine) -> list[tuple[date, str]]:
    async with admin_engine.begin() as connection:  # seeding is the schema owner's
        await seed_demo(connection, cipher=cipher_for_tests(), patients=300, now=datetime.now(UTC))
    async with admin_engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT date_of_birth, address_postal_code FROM phigate.patients p"
                f" WHERE {COUNTED.format('p.id')}"
            )
        )
        return [(row.date_of_birth, row.address_postal_code) for row in rows]


def expected(counts: Counter[str], *, partition: bool = False) -> list[dict]:
    """Cells under 11 withheld, and for a partition (whose total is released) the
    complements that keep them from being worked out."""
    released = protect(counts, (lambda _: "") if partition else None, partition=partition)
    return [
        {"key": cell.key, "patients": cell.patients, "suppressed": cell.suppressed}
        for cell in released.cells
    ]


def age(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


async def test_age_bands_and_zip_areas_match_the_population(
    as_role: AsRole, population: list[tuple[date, str]]
) -> None:
    analyst = await as_role(Role.ANALYST, Purpose.RESEARCH)
    today = datetime.now(UTC).date()
    by_age = (await analyst(COUNTS, {"by": "AGE_BAND"})).ok()["deidentifiedCounts"]
    assert by_age["cells"] == expected(
        Counter(age_band(age(b, today)) for b, _ in population), partition=True
    )
    assert by_age["minimumCellSize"] == 11 and "Safe Harbor" in by_age["method"]
    by_zip = (await analyst(COUNTS, {"by": "ZIP3"})).ok()["deidentifiedCounts"]["cells"]
    assert by_zip == expected(Counter(zip3(z) for _, z in population), partition=True)
    keys = {cell["key"] for cell in by_zip}
    assert "000" in keys  # the demo's 036xx (New Hampshire) area is too sparse to name
    assert all(len(key) == 3 for key in keys)
    assert any(cell["suppressed"] for cell in by_age["cells"]) or all(
        cell["patients"] >= 11 for cell in by_age["cells"]
    )


async def test_diagnoses_count_patients_and_dates_are_years_only(
    as_role: AsRole, population: list[tuple[date, str]], admin_engine: AsyncEngine
) -> None:
    analyst = await as_role(Role.ANALYST, Purpose.OPERATIONS)
    async with admin_engine.connect() as connection:
        truth = dict(
            (
                await connection.execute(
                    text(
                        "SELECT icd10_code, count(DISTINCT patient_id) FROM phigate.diagnoses d"
                        f" WHERE {COUNTED.format('d.patient_id')} GROUP BY 1"
                    )
                )
            ).all()
        )
    cells = (await analyst(COUNTS, {"by": "DIAGNOSIS"})).ok()["deidentifiedCounts"]["cells"]
    assert cells == expected(Counter(truth))
    onset = (await analyst(COUNTS, {"by": "DIAGNOSIS_ONSET_YEAR"})).ok()["deidentifiedCounts"]
    for cell in onset["cells"]:
        code, year = cell["key"].split(" ")
        assert code in truth and len(year) == 4 and year.isdigit()


async def test_only_analytics_callers_with_a_research_or_operations_purpose(
    as_role: AsRole, population: list[tuple[date, str]]
) -> None:
    no_purpose = await as_role(Role.ANALYST)
    refused = await no_purpose(COUNTS, {"by": "AGE_BAND"})
    assert refused.data is None and refused.codes
    treating = await as_role(Role.ANALYST, Purpose.TREATMENT)
    assert (await treating(COUNTS, {"by": "AGE_BAND"})).data is None
    clinician = await as_role(Role.CLINICIAN, Purpose.RESEARCH)
    assert (await clinician(COUNTS, {"by": "AGE_BAND"})).data is None
    # The same analyst still reaches no record.
    analyst = await as_role(Role.ANALYST, Purpose.RESEARCH)
    assert (await analyst("{ patients(first: 1) { edges { node { id } } } }")).data is None
