"""HIPAA Safe Harbor de-identification (45 CFR 164.514(b)(2)) for aggregate analytics.

Only aggregates leave: counts of patients per cell, where a cell is an age band (ages
over 89 grouped as 90+), a 3-digit ZIP (the areas of 20,000 people or fewer reported as
000), a diagnosis code, or a year (never a finer date). Cells under 11 patients are
suppressed (the count is withheld, not rounded), a common small-cell rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

MIN_CELL = 11
OLDEST_BAND = 90
BAND_WIDTH = 10
# 3-digit ZIP areas with 20,000 people or fewer (2010 Census, as listed in HHS's
# de-identification guidance): Safe Harbor requires them reported as 000.
RESTRICTED_ZIP3 = frozenset(
    {
        "036", "059", "063", "102", "203", "556", "692", "790", "821",
        "823", "830", "831", "878", "879", "884", "890", "893",
    }
)  # fmt: skip
METHOD = "HIPAA Safe Harbor, 45 CFR 164.514(b)(2); cells under 11 suppressed"


class Dimension(StrEnum):
    AGE_BAND = "AGE_BAND"
    ZIP3 = "ZIP3"
    DIAGNOSIS = "DIAGNOSIS"
    DIAGNOSIS_ONSET_YEAR = "DIAGNOSIS_ONSET_YEAR"


def age_band(age: int) -> str:
    if age >= OLDEST_BAND:
        return f"{OLDEST_BAND}+"
    low = max(age, 0) // BAND_WIDTH * BAND_WIDTH
    return f"{low}-{low + BAND_WIDTH - 1}"


def zip3(postal_code: str | None) -> str:
    """The first three digits of a ZIP, or 000 when unknown or too sparsely populated."""
    if not postal_code or len(postal_code) < 3 or not postal_code[:3].isdigit():
        return "000"
    prefix = postal_code[:3]
    return "000" if prefix in RESTRICTED_ZIP3 else prefix


@dataclass(frozen=True, slots=True)
class Cell:
    key: str
    patients: int | None  # None: suppressed

    @property
    def suppressed(self) -> bool:
        return self.patients is None


def cells(counts: Mapping[str, int]) -> list[Cell]:
    """Counts per key as released: small cells withheld, in key order."""
    return [
        Cell(key, count if count >= MIN_CELL else None)
        for key, count in sorted(counts.items())
        if count > 0
    ]


def regroup(rows: Iterable[tuple[str, int]], key: object) -> dict[str, int]:
    """Sum raw (value, count) rows into released keys (``key`` maps a value to one)."""
    totals: dict[str, int] = {}
    for value, count in rows:
        released = key(value)  # type: ignore[operator]
        totals[released] = totals.get(released, 0) + int(count)
    return totals
