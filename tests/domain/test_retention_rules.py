"""Retention, legal hold and deletion rules, with fixed dates."""

from __future__ import annotations

from datetime import date

import pytest

from domain.patients import RetentionClass
from domain.retention import (
    deletion_rule,
    hold_change_rule,
    hold_reason_rule,
    is_expired,
    retention_ends,
)

STANDARD, MINOR = RetentionClass.STANDARD, RetentionClass.MINOR


def test_an_adult_record_is_kept_the_configured_days_after_its_last_change() -> None:
    ends = retention_ends(
        STANDARD, last_changed=date(2019, 3, 1), date_of_birth=date(1970, 5, 5), days=2555
    )
    assert ends == date(2026, 2, 27)  # 2555 days, leap days included


@pytest.mark.parametrize(
    ("today", "expired"), [(date(2026, 2, 26), False), (date(2026, 2, 27), True)]
)
def test_expiry_starts_on_the_day_retention_ends(today: date, expired: bool) -> None:
    assert (
        is_expired(
            STANDARD,
            last_changed=date(2019, 3, 1),
            date_of_birth=date(1970, 5, 5),
            days=2555,
            today=today,
        )
        is expired
    )


def test_a_minor_record_is_kept_past_the_age_of_majority() -> None:
    # Last seen at 5; 2555 days after the 18th birthday is later than after the visit.
    ends = retention_ends(
        MINOR, last_changed=date(2015, 1, 1), date_of_birth=date(2010, 6, 15), days=2555
    )
    assert ends == date(2035, 6, 14)
    # An adult-at-last-visit minor-class record: the later date is still the visit's.
    later = retention_ends(
        MINOR, last_changed=date(2040, 1, 1), date_of_birth=date(2010, 6, 15), days=2555
    )
    assert later == date(2046, 12, 30)


def test_a_leap_day_birthday_comes_of_age_on_28_february() -> None:
    ends = retention_ends(
        MINOR, last_changed=date(2001, 1, 1), date_of_birth=date(2000, 2, 29), days=0
    )
    assert ends == date(2018, 2, 28)


def test_legal_hold_blocks_deletion_and_changes_must_make_sense() -> None:
    assert deletion_rule(True) is not None
    assert deletion_rule(False) is None
    assert hold_change_rule(True, setting=True) == "is already on legal hold"
    assert hold_change_rule(False, setting=False) == "is not on legal hold"
    assert hold_change_rule(False, setting=True) is None


@pytest.mark.parametrize(
    ("reason", "ok"), [("short", False), ("Litigation hold 2026-CV-0001", True), ("x" * 501, False)]
)
def test_a_hold_reason_is_specific_but_bounded(reason: str, ok: bool) -> None:
    assert (hold_reason_rule(reason) is None) is ok
