"""The pure rules behind the hostile-input answers (domain/), unit-tested."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from domain.authorization import is_written_reason
from domain.baas import activation_rule
from domain.breaches import timeline_rule
from domain.patients import MAX_DIAGNOSES, assigned_mrn, diagnosis_count_rule, mrn_rule
from domain.text import MAX_NESTING, is_unsafe_text, nesting_depth

TODAY = date(2026, 12, 2)


@pytest.mark.parametrize(
    ("value", "unsafe"),
    [
        ("plain", False),
        ("tab\tand\nnewline", False),
        ("accents é and emoji 🩺", False),
        ("\x00", True),
        ("a\x00b", True),
        ("\ud800", True),
        ("x\udfff", True),
        ("\u202e", False),  # a bidi override is text: stored and shown, never executed
    ],
)
def test_the_text_rule(value: str, unsafe: bool) -> None:
    assert is_unsafe_text(value) is unsafe


def test_nesting_is_counted_without_recursion() -> None:
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    assert nesting_depth(deep) == MAX_NESTING + 1  # stops counting past the limit
    assert nesting_depth({"a": [{"b": 1}]}) == 3
    assert nesting_depth("flat") == 0


def test_an_agreement_is_signed_into_force_only_for_a_term_not_ended() -> None:
    assert activation_rule(date(2027, 1, 1), today=TODAY) is None
    assert activation_rule(None, today=TODAY) is None
    assert activation_rule(TODAY, today=TODAY) is not None
    assert "future" in (activation_rule(date(2026, 12, 1), today=TODAY) or "")


@pytest.mark.parametrize(
    ("reason", "written"),
    [
        ("..........", False),
        ("aaaaaaaaaaaaaa", False),
        ("x y z 1 2 3 4 5", False),
        ("ab ab ab ab ab", False),  # one word repeated
        ("Unconscious patient in the emergency department", True),
        ("Paciente inconsciente en urgencias", True),
    ],
)
def test_a_break_glass_reason_is_words(reason: str, written: bool) -> None:
    assert is_written_reason(reason) is written


def test_a_patient_holds_a_bounded_number_of_diagnoses() -> None:
    assert diagnosis_count_rule(MAX_DIAGNOSES - 1, 1) is None
    assert diagnosis_count_rule(MAX_DIAGNOSES, 1) is not None
    assert diagnosis_count_rule(0, MAX_DIAGNOSES + 1) is not None


def test_assigned_mrns_follow_the_mrn_rule_and_differ() -> None:
    mrns = {assigned_mrn() for _ in range(1000)}
    assert len(mrns) == 1000
    assert all(mrn_rule(mrn) is None for mrn in mrns)


def test_a_breach_is_discovered_under_the_notification_rule() -> None:
    now = datetime(2026, 12, 2, tzinfo=UTC)
    assert timeline_rule(None, datetime(2009, 9, 23, tzinfo=UTC), now=now) is None
    assert "2009-09-23" in (timeline_rule(None, datetime(2009, 9, 22, tzinfo=UTC), now=now) or "")
