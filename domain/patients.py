"""Rules for a patient's demographic and clinical input. Each ``*_rule`` returns the
broken rule in words (never echoing the value) or ``None`` when the value is fine."""

from __future__ import annotations

import re
import secrets
from datetime import date
from enum import StrEnum

from domain.purposes import Purpose

EARLIEST_BIRTH_DATE = date(1900, 1, 1)


class ConsentType(StrEnum):
    TREATMENT = "TREATMENT"
    DATA_SHARING = "DATA_SHARING"
    RESEARCH = "RESEARCH"
    MARKETING = "MARKETING"
    PSYCHOTHERAPY_NOTES = "PSYCHOTHERAPY_NOTES"


class ConsentStatus(StrEnum):
    GRANTED = "GRANTED"
    REVOKED = "REVOKED"


class RetentionClass(StrEnum):
    STANDARD = "STANDARD"
    MINOR = "MINOR"
    RESEARCH = "RESEARCH"


_MRN = re.compile(r"[A-Z0-9][A-Z0-9-]{3,31}")
_SSN = re.compile(r"(\d{3})-(\d{2})-(\d{4})")
_MEMBER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{2,39}")
_PHONE = re.compile(r"\+[1-9]\d{7,14}")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+")
# ICD-10-CM: a letter, two digits or a digit and a letter (C7A, D3A, M1A), then an
# optional dot and up to four more characters.
_ICD10 = re.compile(r"[A-Z]\d[0-9A-Z](\.[0-9A-Z]{1,4})?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def text_rule(value: str, *, max_length: int, required: bool = True) -> str | None:
    if required and not value.strip():
        return "must not be blank"
    if len(value) > max_length:
        return f"must be at most {max_length} characters"
    if _CONTROL.search(value):
        return "must not contain control characters"
    return None


MRN_CHOICE_RULE = (
    "may be chosen only by a caller who can reach every patient (otherwise 'already in"
    " use' would reveal a patient outside the care team); leave it out and phigate"
    " assigns one"
)


def assigned_mrn() -> str:
    """An MRN for a new patient: 40 random bits, in the MRN alphabet."""
    return f"PG-{secrets.token_hex(5).upper()}"


def mrn_rule(value: str) -> str | None:
    if not _MRN.fullmatch(value):
        return "must be 4 to 32 upper-case letters, digits or hyphens"
    return None


def ssn_rule(value: str) -> str | None:
    match = _SSN.fullmatch(value)
    if not match:
        return "must have the form NNN-NN-NNNN"
    area, group, serial = match.groups()
    if area in ("000", "666") or group == "00" or serial == "0000":
        return "must not use an area, group or serial number that is never issued"
    return None


def member_id_rule(value: str) -> str | None:
    if not _MEMBER_ID.fullmatch(value):
        return "must be 3 to 40 letters, digits or hyphens"
    return None


def phone_rule(value: str) -> str | None:
    if not _PHONE.fullmatch(value):
        return "must be an E.164 number such as +15555550100"
    return None


def email_rule(value: str) -> str | None:
    if len(value) > 254 or not _EMAIL.fullmatch(value):
        return "must be an email address"
    return None


def birth_date_rule(value: date, *, today: date) -> str | None:
    if value > today:
        return "must not be in the future"
    if value < EARLIEST_BIRTH_DATE:
        return f"must not be before {EARLIEST_BIRTH_DATE.isoformat()}"
    return None


def normalize_icd10(value: str) -> str:
    """Upper-case and insert the dot after the category (E119 -> E11.9)."""
    code = value.strip().upper()
    if "." not in code and len(code) > 3:
        code = f"{code[:3]}.{code[3:]}"
    return code


def icd10_rule(value: str) -> str | None:
    if not _ICD10.fullmatch(normalize_icd10(value)):
        return (
            "must be an ICD-10-CM code such as E11.9 (letter, digit, character, "
            "then optionally a dot and up to 4 characters)"
        )
    return None


# A problem list longer than this is not a record anyone reads; the cap keeps every
# patient's diagnoses readable within one response's list budget.
MAX_DIAGNOSES = 100


def diagnosis_count_rule(existing: int, added: int) -> str | None:
    if existing + added > MAX_DIAGNOSES:
        return (
            f"would give the patient more than {MAX_DIAGNOSES} diagnoses; remove resolved"
            " ones first (removeDiagnosisIds)"
        )
    return None


def onset_date_rule(value: date, *, today: date, birth_date: date | None) -> str | None:
    if value > today:
        return "must not be in the future"
    if birth_date is not None and value < birth_date:
        return "must not be before the patient's date of birth"
    return None


# The purposes of a disclosure to a health plan that 164.522(a)(1)(vi) covers.
PAYER_FACING = frozenset({Purpose.PAYMENT, Purpose.OPERATIONS})


def withheld_from_payer(payer_restricted: bool, purpose: object) -> bool:
    """An item the patient paid for out of pocket and asked to keep from their health
    plan is left out of every read for payment or health care operations, the purposes
    of a disclosure to a health plan the rule covers (45 CFR 164.522(a)(1)(vi))."""
    return payer_restricted and purpose in PAYER_FACING


def restriction_change_rule(restricted: bool, *, setting: bool) -> str | None:
    if setting and restricted:
        return "is already withheld from the health plan"
    if not setting and not restricted:
        return "is not withheld from the health plan"
    return None
