"""Breach incidents under the HIPAA Breach Notification Rule (§164.400-414)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from domain.lifecycle import Lifecycle


class BreachStatus(StrEnum):
    REPORTED = "REPORTED"
    UNDER_ASSESSMENT = "UNDER_ASSESSMENT"
    CONFIRMED_BREACH = "CONFIRMED_BREACH"
    NOT_A_BREACH = "NOT_A_BREACH"
    NOTIFYING = "NOTIFYING"
    CLOSED = "CLOSED"


BREACH_LIFECYCLE: Lifecycle[BreachStatus] = Lifecycle(
    "breach incident",
    {
        BreachStatus.REPORTED: frozenset({BreachStatus.UNDER_ASSESSMENT}),
        BreachStatus.UNDER_ASSESSMENT: frozenset(
            {BreachStatus.CONFIRMED_BREACH, BreachStatus.NOT_A_BREACH}
        ),
        BreachStatus.CONFIRMED_BREACH: frozenset({BreachStatus.NOTIFYING}),
        BreachStatus.NOT_A_BREACH: frozenset({BreachStatus.CLOSED}),
        BreachStatus.NOTIFYING: frozenset({BreachStatus.CLOSED}),
        BreachStatus.CLOSED: frozenset(),
    },
)


class RiskConclusion(StrEnum):
    """Outcome of the four-factor assessment of §164.402(2)."""

    LOW_PROBABILITY_OF_COMPROMISE = "LOW_PROBABILITY_OF_COMPROMISE"
    BREACH_PRESUMED = "BREACH_PRESUMED"


class NotificationRecipient(StrEnum):
    INDIVIDUALS = "INDIVIDUALS"
    HHS = "HHS"
    MEDIA = "MEDIA"
    STATE_ATTORNEY_GENERAL = "STATE_ATTORNEY_GENERAL"


class NotificationMethod(StrEnum):
    FIRST_CLASS_MAIL = "FIRST_CLASS_MAIL"
    EMAIL = "EMAIL"
    SUBSTITUTE_WEBSITE = "SUBSTITUTE_WEBSITE"
    TELEPHONE = "TELEPHONE"
    HHS_PORTAL = "HHS_PORTAL"
    PRESS_RELEASE = "PRESS_RELEASE"


# The Breach Notification Rule (45 CFR 164.400-414) applies to breaches discovered on
# or after its effective date; the deadlines computed here mean nothing before it.
RULE_EFFECTIVE = date(2009, 9, 23)


def timeline_rule(
    occurred_at: datetime | None, discovered_at: datetime, *, now: datetime
) -> str | None:
    if discovered_at > now:
        return "must not be in the future"
    if discovered_at.date() < RULE_EFFECTIVE:
        return (
            f"must not be before {RULE_EFFECTIVE.isoformat()}, when the Breach Notification"
            " Rule took effect"
        )
    if occurred_at is not None and occurred_at > discovered_at:
        return "must not be before the occurrence"
    return None


def conclusion_rule(target: BreachStatus, conclusion: RiskConclusion | None) -> str | None:
    """A breach is confirmed or ruled out only on the strength of its risk assessment:
    §164.402(2) presumes a breach unless a low probability of compromise is shown."""
    if target is BreachStatus.CONFIRMED_BREACH and conclusion is None:
        return "requires a completed risk assessment before confirming a breach"
    if (
        target is BreachStatus.NOT_A_BREACH
        and conclusion is not RiskConclusion.LOW_PROBABILITY_OF_COMPROMISE
    ):
        return "requires a risk assessment concluding a low probability of compromise"
    return None


# --- Notification deadlines (§164.404-.412) -------------------------------------------

NOTICE_DAYS = 60  # "without unreasonable delay and in no case later than 60 calendar days"
HHS_IMMEDIATE_THRESHOLD = 500  # §164.408(b): 500 or more individuals
MEDIA_THRESHOLD = 500  # §164.406(a): more than 500 residents of a State or jurisdiction
MAX_LAW_ENFORCEMENT_DELAY_DAYS = 365


class DeadlineStatus(StrEnum):
    PENDING = "PENDING"  # not sent, not yet due
    MET = "MET"  # sent on or before the due date
    LATE = "LATE"  # sent after the due date
    OVERDUE = "OVERDUE"  # not sent, and the due date has passed


@dataclass(frozen=True, slots=True)
class Deadline:
    recipient: NotificationRecipient
    due_on: date
    citation: str
    jurisdiction: str | None = None

    def status(self, sent_on: date | None, *, today: date) -> DeadlineStatus:
        if sent_on is not None:
            return DeadlineStatus.MET if sent_on <= self.due_on else DeadlineStatus.LATE
        return DeadlineStatus.OVERDUE if today > self.due_on else DeadlineStatus.PENDING


def notification_required(conclusion: RiskConclusion | None, status: BreachStatus) -> bool:
    """Notification is owed unless the risk assessment showed a low probability of
    compromise (§164.402(2)): until then a breach is presumed, so deadlines run."""
    return not (
        status is BreachStatus.NOT_A_BREACH
        or conclusion is RiskConclusion.LOW_PROBABILITY_OF_COMPROMISE
    )


def notification_deadlines(
    discovered_on: date,
    *,
    affected_count: int,
    residents: Mapping[str, int],
    law_enforcement_delay_days: int = 0,
) -> list[Deadline]:
    """When each notice is due, counted from the day of discovery (§164.404(a)(2)).

    - individuals: 60 calendar days after discovery (§164.404(b));
    - HHS: at the same time when 500 or more are affected, otherwise in the annual log,
      within 60 days after the end of the calendar year of discovery (§164.408(b), (c));
    - prominent media: 60 days, for each State or jurisdiction with more than 500
      affected residents (§164.406);
    - a law-enforcement delay (§164.412) pushes every deadline back by its period.
    """
    delay = timedelta(days=law_enforcement_delay_days)
    within = discovered_on + timedelta(days=NOTICE_DAYS) + delay
    deadlines = [Deadline(NotificationRecipient.INDIVIDUALS, within, "45 CFR 164.404(b)")]
    if affected_count >= HHS_IMMEDIATE_THRESHOLD:
        deadlines.append(Deadline(NotificationRecipient.HHS, within, "45 CFR 164.408(b)"))
    else:
        year_end = date(discovered_on.year, 12, 31)
        deadlines.append(
            Deadline(
                NotificationRecipient.HHS,
                year_end + timedelta(days=NOTICE_DAYS) + delay,
                "45 CFR 164.408(c)",
            )
        )
    deadlines.extend(
        Deadline(NotificationRecipient.MEDIA, within, "45 CFR 164.406", jurisdiction)
        for jurisdiction, count in sorted(residents.items())
        if count > MEDIA_THRESHOLD
    )
    return deadlines


def first_sent(
    notifications: Iterable[tuple[NotificationRecipient, date]],
) -> dict[NotificationRecipient, date]:
    """The earliest notice sent to each kind of recipient."""
    earliest: dict[NotificationRecipient, date] = {}
    for recipient, sent_on in notifications:
        if recipient not in earliest or sent_on < earliest[recipient]:
            earliest[recipient] = sent_on
    return earliest


@dataclass(frozen=True, slots=True)
class ScheduledNotice:
    deadline: Deadline
    sent_on: date | None  # the first notice to that recipient
    status: DeadlineStatus


def notification_schedule(
    discovered_on: date,
    *,
    affected_count: int,
    residents: Mapping[str, int],
    law_enforcement_delay_days: int,
    notices: Iterable[tuple[NotificationRecipient, date]],
    today: date,
) -> list[ScheduledNotice]:
    """Every deadline owed, with the first notice sent for it and how it stands today."""
    sent = first_sent(notices)
    return [
        ScheduledNotice(
            deadline,
            sent.get(deadline.recipient),
            deadline.status(sent.get(deadline.recipient), today=today),
        )
        for deadline in notification_deadlines(
            discovered_on,
            affected_count=affected_count,
            residents=residents,
            law_enforcement_delay_days=law_enforcement_delay_days,
        )
    ]


def law_enforcement_delay_rule(days: int | None) -> str | None:
    if days is not None and not 1 <= days <= MAX_LAW_ENFORCEMENT_DELAY_DAYS:
        return f"must be between 1 and {MAX_LAW_ENFORCEMENT_DELAY_DAYS} days"
    return None
