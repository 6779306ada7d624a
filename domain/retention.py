"""Record retention, legal hold and deletion: when a patient's record may go, and why.

HIPAA itself keeps *documentation* six years (§164.316(b)(2)); how long medical records
are kept is State law, commonly seven to ten years after the last encounter, and for
minors some years past the age of majority. phigate keeps a configurable number of days
after the record was last changed (default 2555, seven years) and, for minors, that many
days after their 18th birthday if that is later. A record on legal hold is never deleted.
"""

from __future__ import annotations

from datetime import date, timedelta
from enum import StrEnum

from domain.patients import RetentionClass

DEFAULT_RETENTION_DAYS = 2555
MIN_RETENTION_DAYS = 365
MAJORITY_YEARS = 18
REASON_MIN, REASON_MAX = 10, 500


class DeletionReason(StrEnum):
    PATIENT_REQUEST = "PATIENT_REQUEST"  # a request honoured under State law or policy
    RETENTION_EXPIRED = "RETENTION_EXPIRED"  # `phigate retention run`
    ERRONEOUS_RECORD = "ERRONEOUS_RECORD"  # registered in error (duplicate, wrong person)


def _birthday(born: date, years: int) -> date:
    try:
        return born.replace(year=born.year + years)
    except ValueError:  # born on 29 February
        return born.replace(year=born.year + years, day=28)


def retention_ends(
    retention_class: RetentionClass, *, last_changed: date, date_of_birth: date, days: int
) -> date:
    """The first day the record may be deleted."""
    ends = last_changed + timedelta(days=days)
    if retention_class is RetentionClass.MINOR:
        ends = max(ends, _birthday(date_of_birth, MAJORITY_YEARS) + timedelta(days=days))
    return ends


def is_expired(
    retention_class: RetentionClass,
    *,
    last_changed: date,
    date_of_birth: date,
    days: int,
    today: date,
) -> bool:
    return today >= retention_ends(
        retention_class, last_changed=last_changed, date_of_birth=date_of_birth, days=days
    )


def deletion_rule(on_legal_hold: bool) -> str | None:
    if on_legal_hold:
        return "is on legal hold: release the hold before deleting the record"
    return None


def hold_reason_rule(reason: str) -> str | None:
    stripped = reason.strip()
    if not REASON_MIN <= len(stripped) <= REASON_MAX:
        return f"must be {REASON_MIN} to {REASON_MAX} characters"
    return None


def hold_change_rule(currently_held: bool, *, setting: bool) -> str | None:
    if setting and currently_held:
        return "is already on legal hold"
    if not setting and not currently_held:
        return "is not on legal hold"
    return None
