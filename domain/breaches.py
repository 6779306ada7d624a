"""Breach incidents under the HIPAA Breach Notification Rule (§164.400-414)."""

from __future__ import annotations

from datetime import datetime
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


def timeline_rule(
    occurred_at: datetime | None, discovered_at: datetime, *, now: datetime
) -> str | None:
    if discovered_at > now:
        return "must not be in the future"
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
