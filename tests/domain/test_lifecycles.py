from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from domain.baas import BAA_LIFECYCLE, BaaStatus, document_sha256, is_expiring, term_rule
from domain.breaches import (
    BREACH_LIFECYCLE,
    BreachStatus,
    RiskConclusion,
    conclusion_rule,
    timeline_rule,
)
from domain.errors import IllegalTransition

B = BreachStatus
A = BaaStatus

BREACH_ALLOWED = {
    (B.REPORTED, B.UNDER_ASSESSMENT),
    (B.UNDER_ASSESSMENT, B.CONFIRMED_BREACH),
    (B.UNDER_ASSESSMENT, B.NOT_A_BREACH),
    (B.CONFIRMED_BREACH, B.NOTIFYING),
    (B.NOT_A_BREACH, B.CLOSED),
    (B.NOTIFYING, B.CLOSED),
}


@pytest.mark.parametrize("current", list(B))
@pytest.mark.parametrize("target", list(B))
def test_breach_lifecycle_is_exactly_the_documented_one(current: B, target: B) -> None:
    allowed = (current, target) in BREACH_ALLOWED
    assert BREACH_LIFECYCLE.can_move(current, target) is allowed
    if not allowed:
        with pytest.raises(IllegalTransition) as raised:
            BREACH_LIFECYCLE.require(current, target)
        assert current.value in raised.value.message and target.value in raised.value.message


def test_closed_breach_is_final() -> None:
    with pytest.raises(IllegalTransition, match="none \\(final state\\)"):
        BREACH_LIFECYCLE.require(B.CLOSED, B.REPORTED)


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        (A.DRAFT, A.SENT, True),
        (A.SENT, A.ACTIVE, True),
        (A.DRAFT, A.ACTIVE, True),
        (A.ACTIVE, A.EXPIRED, True),
        (A.ACTIVE, A.TERMINATED, True),
        (A.EXPIRED, A.ACTIVE, True),  # renewal
        (A.ACTIVE, A.DRAFT, False),
        (A.TERMINATED, A.ACTIVE, False),
        (A.EXPIRED, A.SENT, False),
    ],
)
def test_baa_lifecycle(current: A, target: A, allowed: bool) -> None:
    assert BAA_LIFECYCLE.can_move(current, target) is allowed


def test_confirming_or_ruling_out_needs_a_matching_conclusion() -> None:
    assert conclusion_rule(B.CONFIRMED_BREACH, None) is not None
    assert conclusion_rule(B.CONFIRMED_BREACH, RiskConclusion.BREACH_PRESUMED) is None
    assert conclusion_rule(B.NOT_A_BREACH, RiskConclusion.BREACH_PRESUMED) is not None
    assert conclusion_rule(B.NOT_A_BREACH, None) is not None
    assert conclusion_rule(B.NOT_A_BREACH, RiskConclusion.LOW_PROBABILITY_OF_COMPROMISE) is None
    assert conclusion_rule(B.UNDER_ASSESSMENT, None) is None


def test_breach_timeline() -> None:
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    discovered = datetime(2026, 11, 20, tzinfo=UTC)
    assert timeline_rule(datetime(2026, 11, 19, tzinfo=UTC), discovered, now=now) is None
    assert timeline_rule(None, discovered, now=now) is None
    assert timeline_rule(datetime(2026, 11, 21, tzinfo=UTC), discovered, now=now) is not None
    assert timeline_rule(None, datetime(2026, 11, 24, tzinfo=UTC), now=now) is not None


def test_baa_term_and_expiry_window() -> None:
    assert term_rule(date(2026, 1, 1), date(2027, 1, 1)) is None
    assert term_rule(date(2026, 1, 1), date(2026, 1, 1)) is not None
    assert term_rule(None, date(2026, 1, 1)) is None
    today = date(2026, 11, 23)
    assert is_expiring(date(2026, 12, 23), today=today, within_days=30)
    assert not is_expiring(date(2026, 12, 24), today=today, within_days=30)
    assert not is_expiring(date(2026, 11, 22), today=today, within_days=30)
    assert not is_expiring(None, today=today, within_days=30)


def test_document_hash_is_sha256() -> None:
    assert (
        document_sha256(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def test_a_baa_covers_a_service_only_while_active_in_date_and_naming_it() -> None:
    from datetime import date

    from domain.baas import BaaStatus, covers

    base = {
        "status": BaaStatus.ACTIVE,
        "vendor_name": "Example  Claims Clearinghouse",
        "services": ["Claims submission", "Eligibility checks"],
        "expiry": date(2027, 1, 31),
        "service_vendor": "example claims clearinghouse",
        "service_name": "claims  SUBMISSION",
        "today": date(2027, 1, 31),
    }
    assert covers(**base)
    assert not covers(**{**base, "today": date(2027, 2, 1)})
    assert not covers(**{**base, "status": BaaStatus.EXPIRED})
    assert not covers(**{**base, "service_name": "Remittance advice"})
    assert not covers(**{**base, "service_vendor": "Another Vendor"})
