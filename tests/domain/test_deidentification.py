"""Safe Harbor rules for released aggregates."""

from __future__ import annotations

import pytest

from domain.deidentification import MIN_CELL, Cell, age_band, cells, regroup, zip3


@pytest.mark.parametrize(
    ("age", "band"),
    [(0, "0-9"), (9, "0-9"), (10, "10-19"), (89, "80-89"), (90, "90+"), (104, "90+")],
)
def test_ages_over_89_are_one_band(age: int, band: str) -> None:
    assert age_band(age) == band


@pytest.mark.parametrize(
    ("postal", "released"),
    [
        ("02115", "021"),
        ("03601", "000"),
        ("89301", "000"),
        ("10299", "000"),
        (None, "000"),
        ("ab", "000"),
    ],
)
def test_sparse_zip_areas_are_000(postal: str | None, released: str) -> None:
    assert zip3(postal) == released


def test_small_cells_are_withheld_not_rounded() -> None:
    released = cells({"E11.9": MIN_CELL, "I10": MIN_CELL - 1, "J45.909": 40, "Z00": 0})
    assert released == [Cell("E11.9", 11), Cell("I10", None), Cell("J45.909", 40)]
    assert [c.suppressed for c in released] == [False, True, False]


def test_raw_rows_are_summed_into_released_keys() -> None:
    totals = regroup([(91, 3), (95, 9), (34, 12)], age_band)
    assert totals == {"90+": 12, "30-39": 12}
    assert cells(totals) == [Cell("30-39", 12), Cell("90+", 12)]
