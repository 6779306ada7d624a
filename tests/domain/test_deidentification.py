"""Safe Harbor rules for released aggregates."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


# Complementary suppression: a reader who knows the rule and the totals cannot work out
# a withheld count from the rest of the same answer.


def possible_values(released, total: int) -> dict[str, set[int]]:
    """Every count each withheld cell could hold, by brute force: assignments of 1 to
    ``high`` per withheld cell that add up to what the total leaves, for each reading
    of the rule (all withheld cells small, or some of them complements, no larger than
    the smallest released cell)."""
    from itertools import product

    withheld = [c.key for c in released if c.suppressed]
    shown = [c.patients for c in released if not c.suppressed]
    remaining = total - sum(shown)
    smallest = min(shown, default=remaining)
    values: dict[str, set[int]] = {key: set() for key in withheld}
    for high in {MIN_CELL - 1, max(MIN_CELL - 1, smallest)}:
        if not withheld:
            continue
        for head in product(range(1, high + 1), repeat=len(withheld) - 1):
            last = remaining - sum(head)
            if 1 <= last <= high:
                for key, value in zip(withheld, (*head, last), strict=True):
                    values[key].add(value)
    return values


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from("ABCD"), st.integers(0, 30), min_size=1, max_size=4))
def test_no_withheld_count_follows_from_the_released_cells_and_total(counts) -> None:
    from domain.deidentification import protect

    answer = protect(counts, lambda _: "", partition=True)
    total = sum(counts.values())
    listed = {c.key for c in answer.cells}
    # Every non-empty cell is listed, or (when nothing could hide it) the group is not.
    assert listed in ({k for k, v in counts.items() if v > 0}, set())
    for cell in answer.cells:
        if not cell.suppressed:
            assert cell.patients == counts[cell.key] >= MIN_CELL
    assert answer.total == (total if total >= MIN_CELL else None)
    if answer.total is None:
        return  # without the total, each withheld cell is anything from 1 to 10 or more
    for key, possible in possible_values(answer.cells, total).items():
        assert counts[key] in possible
        assert len(possible) >= 2, f"{key} is determined: {counts}"


def test_one_withheld_cell_takes_the_smallest_released_one_with_it() -> None:
    from domain.deidentification import protect

    answer = protect({"20-29": 40, "30-39": 14, "90+": 3}, lambda _: "", partition=True)
    assert answer.cells == [Cell("20-29", 40), Cell("30-39", None), Cell("90+", None)]
    assert answer.total == 57


def test_all_ones_are_not_listed() -> None:
    from domain.deidentification import protect

    # Eleven patients in eleven areas: listed, each would be known to hold exactly one.
    answer = protect({f"{n:03d}": 1 for n in range(11)}, lambda _: "", partition=True)
    assert answer.cells == [] and answer.total == 11


def test_diagnoses_overlap_and_need_no_complement() -> None:
    from domain.deidentification import protect

    answer = protect({"E11.9": 30, "I10": 4})
    assert answer.cells == [Cell("E11.9", 30), Cell("I10", None)] and answer.total is None


@pytest.mark.parametrize(("cells", "largest"), [(2, 40), (3, 22), (4, 13)])
def test_a_reader_who_knows_the_algorithm_cannot_invert_it(cells: int, largest: int) -> None:
    """Exhaustively: every population of up to ``cells`` areas with 0 to ``largest``
    patients each, grouped by the answer it produces. Whatever a reader sees, every
    withheld cell could hold at least two counts among the populations that produce it
    (a first version chose the complement among ties by key order, which gave the
    complement away)."""
    from collections import defaultdict
    from itertools import product

    from domain.deidentification import protect

    keys = [f"{n:03d}" for n in range(cells)]
    seen: dict[tuple, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    for values in product(range(largest + 1), repeat=cells):
        counts = dict(zip(keys, values, strict=True))
        answer = protect(counts, lambda _: "", partition=True)
        shown = (tuple((c.key, c.patients) for c in answer.cells), answer.total)
        for cell in answer.cells:
            if cell.suppressed:
                seen[shown][cell.key].add(counts[cell.key])
    determined = [
        (shown, key) for shown, by_key in seen.items() for key, v in by_key.items() if len(v) < 2
    ]
    assert determined == [], determined[:3]


def test_onset_years_release_no_total() -> None:
    from domain.deidentification import protect

    answer = protect({"X 2019": 5, "Y 2020": 30, "Y 2021": 40}, lambda key: key.split()[0])
    assert answer.total is None
