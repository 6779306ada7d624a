"""Raw aggregates for de-identified analytics, through the aggregate-only functions of
migrations 0009 and 0022 (analysts' transactions reach no patient rows). Patients who
revoked their research consent are never counted (``for_research`` is always true):
counting them for one purpose and not another would let the difference say where they
are."""

from __future__ import annotations

from datetime import date

from sqlalchemy import text

from db.unit_of_work import RequestDatabase


async def patients_by_age(db: RequestDatabase, as_of: date) -> list[tuple[int, int]]:
    rows = await db.rows(
        text("SELECT age, patients FROM phigate.deid_patients_by_age(:d, true)"),
        {"d": as_of},
    )
    return [(row.age, row.patients) for row in rows if row.age is not None]


async def patients_by_zip3(db: RequestDatabase) -> list[tuple[str | None, int]]:
    rows = await db.rows(text("SELECT zip3, patients FROM phigate.deid_patients_by_zip3(true)"))
    return [(row.zip3, row.patients) for row in rows]


async def patients_by_diagnosis(db: RequestDatabase) -> list[tuple[str, int]]:
    rows = await db.rows(
        text("SELECT icd10_code, patients FROM phigate.deid_patients_by_diagnosis(true)"),
    )
    return [(row.icd10_code, row.patients) for row in rows]


async def patients_by_onset_year(db: RequestDatabase) -> list[tuple[str, int]]:
    rows = await db.rows(
        text(
            "SELECT icd10_code, onset_year, patients FROM phigate.deid_patients_by_onset_year(true)"
        ),
    )
    return [(f"{row.icd10_code} {row.onset_year}", row.patients) for row in rows]
