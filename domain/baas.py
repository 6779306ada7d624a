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


def activation_rule(expiry: date | None, *, today: date) -> str | None:
    """An agreement is signed (or renewed) into force only for a term that has not
    ended: an ACTIVE agreement past its expiry would cover nothing and be reported as
    neither active nor expiring."""
    if expiry is not None and expiry <= today:
        return "must be in the future to sign or renew the agreement; extend it first (baaUpdate)"
    return None


def is_expiring(expiry: date | None, *, today: date, within_days: int) -> bool:
    return expiry is not None and 0 <= (expiry - today).days <= within_days


def _same_name(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def covers(
    *,
    status: BaaStatus,
    vendor_name: str,
    services: list[str],
    expiry: date | None,
    service_vendor: str,
    service_name: str,
    today: date,
) -> bool:
    """Whether an agreement covers a service: ACTIVE, not past its expiry, with the
    service's vendor, naming the service (names compared ignoring case and spacing)."""
    return (
        status is BaaStatus.ACTIVE
        and (expiry is None or expiry >= today)
        and _same_name(vendor_name, service_vendor)
        and any(_same_name(covered, service_name) for covered in services)
    )
