"""Breach notification deadlines (§164.404-.412), with fixed dates."""

from __future__ import annotations

from datetime import date

import pytest

from domain.breaches import (
    BreachStatus,
    Deadline,
    DeadlineStatus,
    NotificationRecipient,
    RiskConclusion,
    first_sent,
    law_enforcement_delay_rule,
    notification_deadlines,
    notification_required,
)

INDIVIDUALS, HHS, MEDIA = (
    NotificationRecipient.INDIVIDUALS,
    NotificationRecipient.HHS,
    NotificationRecipient.MEDIA,
)


def due(deadlines: list[Deadline]) -> dict[tuple[NotificationRecipient, str | None], date]:
    return {(d.recipient, d.jurisdiction): d.due_on for d in deadlines}


def test_a_small_breach_owes_individuals_in_60_days_and_hhs_in_the_annual_log() -> None:
    deadlines = notification_deadlines(date(2026, 3, 10), affected_count=12, residents={"CA": 12})
    assert due(deadlines) == {
        (INDIVIDUALS, None): date(2026, 5, 9),  # 60 calendar days, not business days
        (HHS, None): date(2027, 3, 1),  # 60 days after 31 December
    }


def test_the_annual_log_deadline_falls_on_29_february_in_a_leap_year() -> None:
    deadlines = notification_deadlines(date(2027, 6, 1), affected_count=3, residents={})
    assert due(deadlines)[(HHS, None)] == date(2028, 2, 29)


@pytest.mark.parametrize(("affected", "immediate"), [(499, False), (500, True), (501, True)])
def test_hhs_is_told_at_once_from_500_individuals(affected: int, immediate: bool) -> None:
    deadlines = notification_deadlines(date(2026, 11, 1), affected_count=affected, residents={})
    assert (due(deadlines)[(HHS, None)] == date(2026, 12, 31)) is immediate


@pytest.mark.parametrize(("residents", "media"), [(500, False), (501, True)])
def test_media_only_for_more_than_500_residents_of_one_state(residents: int, media: bool) -> None:
    deadlines = notification_deadlines(
        date(2026, 1, 5), affected_count=residents + 400, residents={"TX": residents, "OK": 400}
    )
    assert ((MEDIA, "TX") in due(deadlines)) is media
    assert (MEDIA, "OK") not in due(deadlines)
    if media:
        assert due(deadlines)[(MEDIA, "TX")] == date(2026, 3, 6)


def test_a_law_enforcement_delay_pushes_every_deadline_back() -> None:
    plain = due(notification_deadlines(date(2026, 2, 1), affected_count=600, residents={"NY": 600}))
    delayed = due(
        notification_deadlines(
            date(2026, 2, 1),
            affected_count=600,
            residents={"NY": 600},
            law_enforcement_delay_days=30,
        )
    )
    assert {key: (delayed[key] - plain[key]).days for key in plain} == {
        (INDIVIDUALS, None): 30,
        (HHS, None): 30,
        (MEDIA, "NY"): 30,
    }


def test_a_deadline_is_met_late_pending_or_overdue() -> None:
    deadline = Deadline(INDIVIDUALS, date(2026, 5, 9), "45 CFR 164.404(b)")
    assert deadline.status(date(2026, 5, 9), today=date(2026, 6, 1)) is DeadlineStatus.MET
    assert deadline.status(date(2026, 5, 10), today=date(2026, 6, 1)) is DeadlineStatus.LATE
    assert deadline.status(None, today=date(2026, 5, 9)) is DeadlineStatus.PENDING
    assert deadline.status(None, today=date(2026, 5, 10)) is DeadlineStatus.OVERDUE


def test_the_earliest_notice_to_each_recipient_counts() -> None:
    sent = first_sent(
        [(HHS, date(2026, 4, 2)), (INDIVIDUALS, date(2026, 4, 9)), (HHS, date(2026, 3, 30))]
    )
    assert sent == {HHS: date(2026, 3, 30), INDIVIDUALS: date(2026, 4, 9)}


def test_only_a_low_probability_of_compromise_releases_the_duty_to_notify() -> None:
    assert notification_required(None, BreachStatus.REPORTED)
    assert notification_required(RiskConclusion.BREACH_PRESUMED, BreachStatus.NOTIFYING)
    assert not notification_required(
        RiskConclusion.LOW_PROBABILITY_OF_COMPROMISE, BreachStatus.CLOSED
    )
    assert not notification_required(None, BreachStatus.NOT_A_BREACH)


@pytest.mark.parametrize(
    ("days", "ok"), [(None, True), (1, True), (365, True), (0, False), (366, False)]
)
def test_a_law_enforcement_delay_has_a_sane_length(days: int | None, ok: bool) -> None:
    assert (law_enforcement_delay_rule(days) is None) is ok
