"""Business Associate Agreements (§164.502(e), §164.504(e))."""

from __future__ import annotations

import hashlib
from datetime import date
from enum import StrEnum

from domain.lifecycle import Lifecycle


class BaaStatus(StrEnum):
    DRAFT = "DRAFT"
    SENT = "SENT"
    ACTIVE = "ACTIVE"
    EXPIRED = "EXPIRED"
    TERMINATED = "TERMINATED"


BAA_LIFECYCLE: Lifecycle[BaaStatus] = Lifecycle(
    "BAA",
    {
        BaaStatus.DRAFT: frozenset({BaaStatus.SENT, BaaStatus.ACTIVE, BaaStatus.TERMINATED}),
        BaaStatus.SENT: frozenset({BaaStatus.DRAFT, BaaStatus.ACTIVE, BaaStatus.TERMINATED}),
        BaaStatus.ACTIVE: frozenset({BaaStatus.EXPIRED, BaaStatus.TERMINATED}),
        # A renewal is a new signature on an expired agreement.
        BaaStatus.EXPIRED: frozenset({BaaStatus.ACTIVE, BaaStatus.TERMINATED}),
        BaaStatus.TERMINATED: frozenset(),
    },
)


def document_sha256(document: bytes) -> str:
    return hashlib.sha256(document).hexdigest()


def term_rule(effective: date | None, expiry: date | None) -> str | None:
    if effective is not None and expiry is not None and expiry <= effective:
        return "must be after the effective date"
    return None


def is_expiring(expiry: date | None, *, today: date, within_days: int) -> bool:
    return expiry is not None and 0 <= (expiry - today).days <= within_days
