"""Synthetic, obviously fake demo data. Deterministic and idempotent: ids are derived
from a fixed namespace, so seeding twice adds nothing.

Every value is fictional by construction: SSNs in the 9xx range (never issued as
SSNs), phone numbers in the 555-01xx range reserved for fiction, e-mail addresses
under example.test, names that say "Synthetic", MRNs that start with DEMO-.

The first 50 patients are the ones the README, the docs and the tests name (the demo
clinician looks after 1 to 10): they never change. The rest (3,000 patients in all by
default) have a practice's spread of ages, areas, diagnoses and consents, drawn per
patient from a generator seeded by the patient's number, so that de-identified counts
have cells worth reading, some withheld, and the same ones on every run.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from db.crypto import FieldCipher
from db.models import (
    Baa,
    BreachAffectedPatient,
    BreachIncident,
    BreachJurisdiction,
    CareTeamMember,
    Consent,
    Diagnosis,
    LegalHoldEvent,
    Patient,
)
from db.patients import seal_diagnosis, seal_identifiers
from db.visibility import require_owner

NAMESPACE = uuid.UUID("5b3c6d5e-0f1a-4c2b-9d8e-7f6a5b4c3d2e")
DEMO_PATIENTS = 3_000
NAMED_PATIENTS = 50
GIVEN_NAMES = (
    "Alpha",
    "Bravo",
    "Charlie",
    "Delta",
    "Echo",
    "Foxtrot",
    "Golf",
    "Hotel",
    "India",
    "Juliet",
)
# (ZIP, USPS state): real ZIP areas so that de-identified analytics have something to group.
ZIPS = (
    ("02115", "MA"), ("10001", "NY"), ("60601", "IL"), ("94103", "CA"), ("73301", "TX"),
    ("98101", "WA"), ("33101", "FL"), ("80202", "CO"), ("85001", "AZ"), ("03601", "NH"),
    ("05401", "VT"), ("59101", "MT"),
)  # fmt: skip
# The first 50 patients cluster in a few areas and ages (by patient number modulo 10).
# NH's 036 is a sparsely populated area, reported as 000.
ZIP_SLOTS = (0, 0, 0, 1, 1, 1, 2, 2, 3, 9)
AGE_DECADES = (3, 3, 3, 4, 4, 4, 5, 5, 6, 9)
DIAGNOSES = (
    ("E11.9", "Type 2 diabetes mellitus without complications"),
    ("I10", "Essential (primary) hypertension"),
    ("J45.909", "Unspecified asthma, uncomplicated"),
    ("E78.5", "Hyperlipidemia, unspecified"),
    ("K21.9", "Gastro-esophageal reflux disease without esophagitis"),
    ("F32.9", "Major depressive disorder, single episode, unspecified"),
    ("N39.0", "Urinary tract infection, site not specified"),
    ("J06.9", "Acute upper respiratory infection, unspecified"),
)

# Beyond patient 50. Weights in percent: ages by decade (0-9 to 80-89), ZIPS slots.
AGE_WEIGHTS = (9, 10, 11, 13, 13, 14, 14, 10, 6)
ZIP_WEIGHTS = {0: 30, 1: 18, 2: 12, 3: 10, 6: 8, 5: 6, 4: 5, 7: 5, 8: 4, 9: 2}
# Some patients by arithmetic, (every, offset, ...): five more aged 90+ (ten in all, a
# cell AGE_BAND withholds, with a complement), two areas of a handful each (ZIP3 cells
# withheld) and rare diagnoses (DIAGNOSIS cells withheld).
OLDEST = (600, 0)
SPARSE_AREAS = ((450, 17, 10), (730, 101, 11))
RARE = ((523, 0, "G35"), (997, 5, "Q90.9"), (1409, 77, "E84.9"))
CONGENITAL = frozenset({"Q90.9", "E84.9"})
# Percent of patients with each condition by age decade (0-9 ... 90+): roughly a
# primary-care panel's problem list.
CONDITIONS = (
    ("I10", (0, 0.5, 2, 6, 14, 26, 42, 55, 60, 60)),
    ("E78.5", (0, 0.5, 2, 6, 13, 22, 32, 34, 30, 25)),
    ("E11.9", (0, 0.3, 1, 3, 7, 12, 17, 19, 17, 14)),
    ("J45.909", (8, 9, 7, 6, 6, 6, 5, 5, 4, 3)),
    ("K21.9", (1, 3, 6, 8, 10, 12, 13, 13, 12, 10)),
    ("F32.9", (0, 4, 7, 7, 7, 6, 5, 5, 5, 5)),
    ("F41.1", (1, 5, 8, 8, 7, 6, 5, 4, 3, 3)),
    ("E66.9", (3, 6, 10, 13, 14, 14, 13, 10, 6, 3)),
    ("M54.50", (0, 1, 5, 7, 8, 8, 7, 6, 5, 4)),
    ("E03.9", (0, 0.5, 2, 3, 4, 5, 7, 8, 8, 8)),
    ("G43.909", (0.5, 4, 6, 6, 5, 3, 2, 1, 0.5, 0)),
    ("J44.9", (0, 0, 0, 0.5, 1, 3, 6, 8, 8, 7)),
    ("I48.91", (0, 0, 0, 0, 0.5, 1, 4, 9, 13, 15)),
    ("N18.30", (0, 0, 0, 0.3, 1, 2, 5, 9, 14, 18)),
    ("M17.9", (0, 0, 0, 0.5, 2, 5, 9, 13, 15, 15)),
    ("L20.9", (12, 6, 3, 2, 1, 1, 1, 1, 1, 1)),
)
ACUTE = (
    ("H66.90", (18, 3, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.5)),
    ("N39.0", (2, 3, 5, 4, 4, 4, 5, 6, 8, 10)),
    ("J06.9", (25, 15, 10, 9, 8, 8, 7, 7, 7, 7)),
)
DESCRIPTIONS = dict(DIAGNOSES) | {
    "F41.1": "Generalized anxiety disorder",
    "E66.9": "Obesity, unspecified",
    "M54.50": "Low back pain, unspecified",
    "E03.9": "Hypothyroidism, unspecified",
    "G43.909": "Migraine, unspecified, not intractable, without status migrainosus",
    "J44.9": "Chronic obstructive pulmonary disease, unspecified",
    "I48.91": "Unspecified atrial fibrillation",
    "N18.30": "Chronic kidney disease, stage 3 unspecified",
    "M17.9": "Osteoarthritis of knee, unspecified",
    "L20.9": "Atopic dermatitis, unspecified",
    "H66.90": "Otitis media, unspecified, unspecified ear",
    "G35": "Multiple sclerosis",
    "Q90.9": "Down syndrome, unspecified",
    "E84.9": "Cystic fibrosis, unspecified",
}
MENTAL_HEALTH = frozenset({"F32.9", "F41.1"})
PAYER_RESTRICTED = 0.15  # of those diagnoses: paid out of pocket, withheld from the plan
# Percent of patients: research consent revoked (an opt-out analytics respect) or
# granted; data sharing granted.
RESEARCH_REVOKED, RESEARCH_GRANTED, SHARING_GRANTED = 5, 55, 35
LEGAL_HOLDS = (1000, 333)
HOLD_REASON = "Synthetic demo: records preserved for a fictional lawsuit"
MINOR_DAYS = int(365.25 * 18)
# Columns the first 50 leave at their defaults (the rows of one INSERT share keys).
PATIENT_DEFAULTS = {
    "retention_class": "STANDARD",
    "legal_hold": False,
    "legal_hold_reason": None,
    "legal_hold_set_by": None,
    "legal_hold_set_at": None,
}
DIAGNOSIS_DEFAULTS = {
    "payer_restricted": False,
    "payer_restricted_by": None,
    "payer_restricted_at": None,
}


def demo_id(kind: str, number: int) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"{kind}-{number}")


def _one_in(number: int, every_offset: tuple[int, int]) -> bool:
    every, offset = every_offset
    return number > NAMED_PATIENTS and number % every == offset


def _decade_and_area(number: int) -> tuple[int, int]:
    """The patient's age decade (9: 90+) and index into ZIPS."""
    if number <= NAMED_PATIENTS:
        return AGE_DECADES[number % 10], ZIP_SLOTS[number % 10]
    rng = random.Random(f"population-{number}")
    decade = 9 if _one_in(number, OLDEST) else rng.choices(range(9), AGE_WEIGHTS)[0]
    for every, offset, slot in SPARSE_AREAS:
        if number % every == offset:
            return decade, slot
    return decade, rng.choices(list(ZIP_WEIGHTS), list(ZIP_WEIGHTS.values()))[0]


def synthetic_patient(number: int, *, now: datetime) -> dict[str, Any]:
    rng = random.Random(number)
    decade, area = _decade_and_area(number)
    postal_code, state = ZIPS[area]
    # An age well inside its decade, so the band holds for months after seeding.
    age_days = int(365.25 * decade * 10) + rng.randrange(180, 9 * 365)
    patient = {
        "id": demo_id("patient", number),
        "mrn": f"DEMO-{number:06d}",
        "given_name": GIVEN_NAMES[number % len(GIVEN_NAMES)],
        "family_name": f"Synthetic-{number:05d}",
        "date_of_birth": now.date() - timedelta(days=age_days),
        "ssn": "-".join(
            (
                f"9{rng.randrange(100):02d}",
                f"{rng.randrange(1, 100):02d}",
                f"{rng.randrange(1, 10000):04d}",
            )
        ),
        "address_line": f"{100 + number} Synthetic Way",
        "address_city": "Testville",
        "address_state": state,
        "address_postal_code": postal_code,
        "phone": f"+1617555{100 + number % 100:04d}",
        "email": f"synthetic.{number:05d}@example.test",
        "insurance_payer": "Example Health Plan (synthetic)",
        "insurance_member_id": f"XMP-{number:08d}",
        # Spread creation times so pagination has a stable, realistic order. All within
        # days of seeding: no retention period (a year at least) can have ended.
        "created_at": now - timedelta(minutes=number),
        "updated_at": now - timedelta(minutes=number),
    }
    if number > NAMED_PATIENTS:
        patient["retention_class"] = "MINOR" if age_days < MINOR_DAYS else "STANDARD"
    if _one_in(number, LEGAL_HOLDS):
        patient |= {
            "legal_hold": True,
            "legal_hold_reason": HOLD_REASON,
            "legal_hold_set_by": "seed-demo",
            "legal_hold_set_at": patient["created_at"],
        }
    return patient


def synthetic_diagnoses(number: int, patient: dict[str, Any]) -> list[dict[str, Any]]:
    if number > NAMED_PATIENTS:
        return _panel_diagnoses(number, patient)
    rng = random.Random(number * 7919)
    rows = []
    for slot in range(rng.randrange(1, 4)):
        code, description = DIAGNOSES[(number + slot * 3) % len(DIAGNOSES)]
        onset = patient["date_of_birth"] + timedelta(days=rng.randrange(365 * 5, 365 * 25))
        rows.append(
            {
                "id": demo_id("diagnosis", number * 10 + slot),
                "patient_id": patient["id"],
                "icd10_code": code,
                "description": description,
                "onset_date": min(onset, patient["created_at"].date()),
                "recorded_at": patient["created_at"],
            }
        )
    return rows


def _panel_diagnoses(number: int, patient: dict[str, Any]) -> list[dict[str, Any]]:
    """A problem list by age: chronic conditions began some years ago (most within six),
    acute ones in the last 18 months; each code once per patient, at least one code."""
    rng = random.Random(f"diagnoses-{number}")
    recorded = patient["created_at"]
    lived = (recorded.date() - patient["date_of_birth"]).days
    decade = min(int(lived / 365.25) // 10, 9)
    chosen = [
        (code, acute)
        for acute, conditions in ((False, CONDITIONS), (True, ACUTE))
        for code, percent in conditions
        if rng.random() * 100 < percent[decade]
    ]
    chosen += [(code, False) for every, offset, code in RARE if number % every == offset]
    rows = []
    for code, acute in chosen or [("J06.9", True)]:
        if code in CONGENITAL:
            onset = patient["date_of_birth"] + timedelta(days=rng.randrange(180))
        else:
            days_ago = rng.randrange(540) if acute else int(rng.expovariate(1 / (6 * 365)))
            onset = recorded.date() - timedelta(days=min(days_ago, lived - 90))
        # Some mental-health care is paid out of pocket and withheld from the plan.
        restricted = code in MENTAL_HEALTH and rng.random() < PAYER_RESTRICTED
        rows.append(
            {
                "id": demo_id(f"diagnosis-{code}", number),
                "patient_id": patient["id"],
                "icd10_code": code,
                "description": DESCRIPTIONS[code],
                "onset_date": onset,
                "recorded_at": recorded,
                "payer_restricted": restricted,
                "payer_restricted_by": "seed-demo" if restricted else None,
                "payer_restricted_at": recorded if restricted else None,
            }
        )
    return rows


def synthetic_consents(number: int, patient: dict[str, Any]) -> list[dict[str, Any]]:
    """Treatment consent for everyone; beyond patient 50, research (granted, or revoked:
    an opt-out that analytics respect) and data sharing for some."""
    decisions = [("TREATMENT", "GRANTED", demo_id("consent", number))]
    if number > NAMED_PATIENTS:
        rng = random.Random(f"consents-{number}")
        research = rng.random() * 100
        if research < RESEARCH_REVOKED:
            decisions.append(("RESEARCH", "REVOKED", demo_id("consent-research", number)))
        elif research < RESEARCH_REVOKED + RESEARCH_GRANTED:
            decisions.append(("RESEARCH", "GRANTED", demo_id("consent-research", number)))
        if rng.random() * 100 < SHARING_GRANTED:
            decisions.append(("DATA_SHARING", "GRANTED", demo_id("consent-sharing", number)))
    return [
        {
            "id": consent_id,
            "patient_id": patient["id"],
            "consent_type": consent_type,
            "status": status,
            "effective_date": patient["created_at"].date(),
            "recorded_at": patient["created_at"],
        }
        for consent_type, status, consent_id in decisions
    ]


@dataclass(frozen=True, slots=True)
class SeedReport:
    patients: int
    baas: int
    breaches: int


async def seed_demo(
    connection: AsyncConnection,
    *,
    cipher: FieldCipher,
    patients: int = DEMO_PATIENTS,
    now: datetime | None = None,
) -> SeedReport:
    now = now or datetime.now(UTC)
    await require_owner(connection)
    people = [synthetic_patient(n, now=now) for n in range(1, patients + 1)]
    # One executemany per table (asyncpg pipelines it): 3,000 patients in about a second.
    patient_rows = [
        seal_identifiers(cipher, person["id"], PATIENT_DEFAULTS | person) for person in people
    ]
    diagnoses = [
        seal_diagnosis(cipher, DIAGNOSIS_DEFAULTS | diagnosis)
        for n, person in enumerate(people, start=1)
        for diagnosis in synthetic_diagnoses(n, person)
    ]
    consents = [
        consent
        for n, person in enumerate(people, start=1)
        for consent in synthetic_consents(n, person)
    ]
    holds = [
        {
            "id": demo_id("legal-hold", n),
            "patient_id": person["id"],
            "action": "SET",
            "reason": person["legal_hold_reason"],
            "actor_id": person["legal_hold_set_by"],
            "occurred_at": person["legal_hold_set_at"],
        }
        for n, person in enumerate(people, start=1)
        if person.get("legal_hold")
    ]
    for model, rows in (
        (Patient, patient_rows),
        (Diagnosis, diagnoses),
        (Consent, consents),
        (LegalHoldEvent, holds),
    ):
        if rows:
            await connection.execute(insert(model).on_conflict_do_nothing(), rows)

    baas = [
        _baa(number, vendor, services, categories, status, effective, expiry, now)
        for number, vendor, services, categories, status, effective, expiry in (
            (1, "Example Cloud Hosting (synthetic)", ["Hosting", "Backups"],
             ["IDENTITY", "CONTACT", "IDENTIFIER", "CLINICAL"], "ACTIVE", -335, 30),
            (2, "Example Billing Services (synthetic)", ["Claims processing"],
             ["IDENTITY", "IDENTIFIER", "FINANCIAL"], "ACTIVE", -100, 265),
            (3, "Example Transcription (synthetic)", ["Dictation transcription"],
             ["IDENTITY", "CLINICAL"], "DRAFT", None, None),
            (4, "Example Analytics (synthetic)", ["Population health reports"],
             ["CLINICAL"], "EXPIRED", -800, -70),
        )
    ]  # fmt: skip
    await connection.execute(insert(Baa).on_conflict_do_nothing(), baas)

    affected = min(patients, 12)
    breaches = [
        {
            "id": demo_id("breach", 1),
            "title": "Misdirected fax of lab results (synthetic)",
            "description": "Demo incident: a fax reached the wrong clinic.",
            "discovered_at": now - timedelta(days=3),
            "occurred_at": now - timedelta(days=5),
            "status": "REPORTED",
            "affected_count": min(patients, 3),
            "phi_categories": ["IDENTITY", "CLINICAL"],
            "remediation_actions": ["Recipient confirmed destruction"],
            "created_at": now - timedelta(days=3),
            "updated_at": now - timedelta(days=3),
        },
        {
            "id": demo_id("breach", 2),
            "title": "Stolen unencrypted laptop (synthetic)",
            "description": "Demo incident: a laptop with an export was stolen.",
            "discovered_at": now - timedelta(days=40),
            "occurred_at": now - timedelta(days=41),
            "status": "CONFIRMED_BREACH",
            "affected_count": affected,
            "phi_categories": ["IDENTITY", "CONTACT", "IDENTIFIER"],
            "risk_nature_and_extent": "Names, addresses and SSNs of a subset of patients.",
            "risk_unauthorized_recipient": "Unknown third party.",
            "risk_acquired_or_viewed": "Cannot be ruled out.",
            "risk_mitigation": "Remote wipe attempted; credit monitoring offered.",
            "risk_conclusion": "BREACH_PRESUMED",
            "risk_assessed_at": now - timedelta(days=35),
            "root_cause": "Full-disk encryption not enforced on one device.",
            "remediation_actions": ["Enforce disk encryption", "Retrain staff"],
            "created_at": now - timedelta(days=40),
            "updated_at": now - timedelta(days=35),
        },
    ]
    await connection.execute(insert(BreachIncident).on_conflict_do_nothing(), breaches)
    links = [{"breach_id": demo_id("breach", 1), "patient_id": p["id"]} for p in patient_rows[:3]]
    links += [
        {"breach_id": demo_id("breach", 2), "patient_id": p["id"]} for p in patient_rows[:affected]
    ]
    if links:
        await connection.execute(insert(BreachAffectedPatient).on_conflict_do_nothing(), links)
    for breach_number, group in ((1, patient_rows[:3]), (2, patient_rows[:affected])):
        counts: dict[str, int] = {}
        for p in group:
            counts[p["address_state"]] = counts.get(p["address_state"], 0) + 1
        rows = [
            {"breach_id": demo_id("breach", breach_number), "jurisdiction": s, "affected_count": c}
            for s, c in counts.items()
        ]
        if rows:
            await connection.execute(insert(BreachJurisdiction).on_conflict_do_nothing(), rows)

    total = await connection.scalar(select(func.count()).select_from(Patient))
    return SeedReport(patients=int(total or 0), baas=len(baas), breaches=len(breaches))


def _baa(
    number: int,
    vendor: str,
    services: list[str],
    categories: list[str],
    status: str,
    effective_offset: int | None,
    expiry_offset: int | None,
    now: datetime,
) -> dict[str, Any]:
    """A demo BAA whose dates are offsets in days from today."""
    today = now.date()
    effective = today + timedelta(days=effective_offset) if effective_offset is not None else None
    expiry = today + timedelta(days=expiry_offset) if expiry_offset is not None else None
    signed = status in ("ACTIVE", "EXPIRED")
    return {
        "id": demo_id("baa", number),
        "vendor_name": vendor,
        "vendor_contact_name": "Privacy Officer (synthetic)",
        "vendor_contact_email": f"privacy{number}@example.test",
        "services": services,
        "phi_categories": sorted(categories),
        "status": status,
        "effective_date": effective,
        "expiry_date": expiry,
        "signed_by": "Demo Signatory (synthetic)" if signed else None,
        "signed_at": datetime.combine(effective, datetime.min.time(), UTC)
        if signed and effective
        else None,
        "document_sha256": f"{number:064x}" if signed else None,
        "created_at": now,
        "updated_at": now,
    }


# Demo accounts, one per role: refused in production, flagged `demo` in the database,
# and reported by `phigate check` (Hardening) so they cannot linger unnoticed.
DEMO_PASSWORD = "synthetic demo passphrase 2026"  # noqa: S105 - published on purpose, demo only


def demo_username(role: str) -> str:
    return f"demo.{role.lower().replace('_officer', '')}"


def demo_totp_secret(role: str) -> str:
    """Deterministic, so the README can show how to produce a code; demo only."""
    import base64
    import hashlib

    return base64.b32encode(
        hashlib.sha256(f"phigate demo totp {role}".encode()).digest()[:20]
    ).decode()


async def seed_care_team(
    connection: AsyncConnection, *, user_id: uuid.UUID, patients: range
) -> None:
    """Put a demo clinician or nurse on the care team of some demo patients."""
    await require_owner(connection)
    wanted = [demo_id("patient", n) for n in patients]
    # Fewer demo patients than the team would cover (`seed-demo --patients 3`): those there are.
    present = set(
        (await connection.execute(select(Patient.id).where(Patient.id.in_(wanted)))).scalars()
    )
    rows = [
        {"patient_id": patient_id, "user_id": user_id, "added_by": "seed-demo"}
        for patient_id in wanted
        if patient_id in present
    ]
    if rows:
        await connection.execute(insert(CareTeamMember).on_conflict_do_nothing(), rows)
