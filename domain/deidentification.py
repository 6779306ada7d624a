"""HIPAA Safe Harbor de-identification (45 CFR 164.514(b)(2)) for aggregate analytics.

Only aggregates leave: counts of patients per cell, where a cell is an age band (ages
over 89 grouped as 90+), a 3-digit ZIP (the areas of 20,000 people or fewer reported as
000), a diagnosis code, or a year (never a finer date). Cells under 11 patients are
suppressed (the count is withheld, not rounded), a common small-cell rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
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
METHOD = (
    "HIPAA Safe Harbor, 45 CFR 164.514(b)(2); cells under 11 suppressed, and further cells"
    " where a suppressed count could be worked out from the rest"
)


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
    """Counts per key with small cells withheld (primary suppression only), in key
    order. Released answers also need ``protect``."""
    return [
        Cell(key, count if count >= MIN_CELL else None)
        for key, count in sorted(counts.items())
        if count > 0
    ]


@dataclass(frozen=True, slots=True)
class Released:
    cells: list[Cell]
    total: int | None  # the population of a partition; None when withheld or not one


def protect(
    counts: Mapping[str, int],
    group: Callable[[str], str] | None = None,
    *,
    partition: bool = False,
) -> Released:
    """Cells as released, with complementary suppression: no withheld count can be
    worked out from the released cells and the group totals.

    Within a group the counts add up to a total the caller may know (for a partition
    of the population, AGE_BAND or ZIP3, the released ``total``; for a code's onset
    years, that code's count from DIAGNOSIS). Whoever reads the answer knows every
    listed cell holds at least one patient, that a cell under 11 is withheld, and that
    a complementary cell is never larger than the smallest released one. Given the
    group's total, if a withheld cell's count is the only one consistent with all that
    (one withheld cell; all of them 1; all of them 10 ...), the smallest released cell
    is withheld too, and so on; if even withholding all of them leaves it determined,
    the group's cells are not listed at all. The decision uses only what the answer
    itself reveals, so it leaks nothing further (ties for smallest are withheld
    together, or the choice would say which withheld cell is the complement).
    ``group=None``: the cells do not add up to anything (a patient may have several
    diagnoses). ``partition``: every patient is in exactly one cell, and the total is
    released (from 11).
    """
    positive = {key: count for key, count in counts.items() if count > 0}
    hidden = {key for key, count in positive.items() if count < MIN_CELL}
    dropped: set[str] = set()
    if group is not None:
        groups: dict[str, list[str]] = {}
        for key in sorted(positive):
            groups.setdefault(group(key), []).append(key)
        for keys in groups.values():
            while _determinable([positive[k] for k in keys], [k in hidden for k in keys]):
                released = [positive[k] for k in keys if k not in hidden]
                if not released:
                    dropped.update(keys)  # nothing left to hide behind
                    break
                # Every cell tied for smallest: choosing one by key order would tell a
                # reader which withheld cell is the complement.
                smallest = min(released)
                hidden.update(k for k in keys if k not in hidden and positive[k] == smallest)
    total = sum(positive.values())
    return Released(
        cells=[
            Cell(key, None if key in hidden else count)
            for key, count in sorted(positive.items())
            if key not in dropped
        ],
        total=total if partition and total >= MIN_CELL else None,
    )


def feasible(withheld: int, size: int, low: int, high: int) -> tuple[int, int] | None:
    """The values one of ``size`` withheld cells may hold when each holds ``low`` to
    ``high`` and together they hold ``withheld``; None when no assignment fits."""
    if not size * low <= withheld <= size * high:
        return None
    return max(low, withheld - (size - 1) * high), min(high, withheld - (size - 1) * low)


def _determinable(counts: list[int], hidden: list[bool]) -> bool:
    """Whether a reader who knows the group's total can tell a withheld cell's count."""
    withheld = [count for count, is_hidden in zip(counts, hidden, strict=True) if is_hidden]
    if not withheld:
        return False
    shown = [count for count, is_hidden in zip(counts, hidden, strict=True) if not is_hidden]
    smallest_shown = min(shown, default=sum(withheld))
    # A reader may assume every withheld cell is a small one, or allow that some are
    # complements (no larger than the smallest released cell).
    for high in (MIN_CELL - 1, max(MIN_CELL - 1, smallest_shown)):
        span = feasible(sum(withheld), len(withheld), 1, high)
        if span is not None and span[0] == span[1]:
            return True
    return False


def regroup(rows: Iterable[tuple[str, int]], key: object) -> dict[str, int]:
    """Sum raw (value, count) rows into released keys (``key`` maps a value to one)."""
    totals: dict[str, int] = {}
    for value, count in rows:
        released = key(value)  # type: ignore[operator]
        totals[released] = totals.get(released, 0) + int(count)
    return totals
