from __future__ import annotations

from datetime import date

import pytest

from domain import patients as rules
from domain.geography import jurisdiction_rule, postal_code_rule

TODAY = date(2026, 11, 23)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("E11.9", True),
        ("I10", True),
        ("J45.909", True),
        ("M1A.0710", True),
        ("C7A.010", True),
        ("U07.1", True),
        ("e119", True),  # normalised to E11.9
        ("E11.", False),
        ("11.9", False),
        ("E1", False),
        ("E11.12345", False),
        ("E11-9", False),
        ("", False),
    ],
)
def test_icd10_codes(value: str, ok: bool) -> None:
    assert (rules.icd10_rule(value) is None) is ok


def test_icd10_normalisation() -> None:
    assert rules.normalize_icd10(" e119 ") == "E11.9"
    assert rules.normalize_icd10("I10") == "I10"


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("987-65-4321", True),
        ("900-12-3456", True),
        ("000-12-3456", False),
        ("666-12-3456", False),
        ("912-00-3456", False),
        ("912-34-0000", False),
        ("912345678", False),
        ("912-34-567", False),
    ],
)
def test_ssn_format(value: str, ok: bool) -> None:
    assert (rules.ssn_rule(value) is None) is ok


@pytest.mark.parametrize(
    ("rule", "value", "ok"),
    [
        (rules.mrn_rule, "DEMO-000001", True),
        (rules.mrn_rule, "demo-1", False),
        (rules.mrn_rule, "AB", False),
        (rules.phone_rule, "+16175550100", True),
        (rules.phone_rule, "617-555-0100", False),
        (rules.email_rule, "synthetic.1@example.test", True),
        (rules.email_rule, "not-an-email", False),
        (rules.email_rule, "a@b", False),
        (rules.member_id_rule, "XMP-00000001", True),
        (rules.member_id_rule, "x", False),
        (jurisdiction_rule, "MA", True),
        (jurisdiction_rule, "PR", True),
        (jurisdiction_rule, "ZZ", False),
        (jurisdiction_rule, "ma", False),
        (postal_code_rule, "02115", True),
        (postal_code_rule, "02115-1234", True),
        (postal_code_rule, "2115", False),
    ],
)
def test_format_rules(rule, value: str, ok: bool) -> None:
    assert (rule(value) is None) is ok


@pytest.mark.parametrize(
    ("birth", "rule"),
    [
        (date(1980, 1, 1), None),
        (TODAY, None),
        (date(2026, 11, 24), "must not be in the future"),
        (date(1899, 12, 31), "must not be before 1900-01-01"),
    ],
)
def test_birth_date(birth: date, rule: str | None) -> None:
    assert rules.birth_date_rule(birth, today=TODAY) == rule


def test_onset_date_not_before_birth_nor_in_future() -> None:
    birth = date(1990, 5, 1)
    assert rules.onset_date_rule(date(2000, 1, 1), today=TODAY, birth_date=birth) is None
    assert rules.onset_date_rule(date(1990, 4, 30), today=TODAY, birth_date=birth) is not None
    assert rules.onset_date_rule(date(2027, 1, 1), today=TODAY, birth_date=birth) is not None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Alpha", None),
        ("", "must not be blank"),
        ("   ", "must not be blank"),
        ("x" * 101, "must be at most 100 characters"),
        ("tab\there", "must not contain control characters"),
    ],
)
def test_text_rule(value: str, expected: str | None) -> None:
    assert rules.text_rule(value, max_length=100) == expected


def test_rules_never_echo_the_value() -> None:
    canary = "Canary 123-45-678X!"
    for rule in (
        rules.ssn_rule,
        rules.mrn_rule,
        rules.phone_rule,
        rules.email_rule,
        rules.icd10_rule,
    ):
        message = rule(canary)
        assert message is not None
        assert canary not in message


def test_a_payer_restriction_holds_for_payment_and_operations_only() -> None:
    from domain.patients import withheld_from_payer
    from domain.purposes import Purpose

    withheld = {p for p in Purpose if withheld_from_payer(True, p)}
    assert withheld == {Purpose.PAYMENT, Purpose.OPERATIONS}
    assert not any(withheld_from_payer(False, p) for p in Purpose)
    assert not withheld_from_payer(True, None)
