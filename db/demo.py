"""Synthetic, obviously fake demo data. Deterministic and idempotent: ids are derived
from a fixed namespace, so seeding twice adds nothing.

Every value is fictional by construction: SSNs in the 9xx range (never issued as
SSNs), phone numbers in the 555-01xx range reserved for fiction, e-mail addresses
under example.test, names that say "Synthetic", MRNs that start with DEMO-.
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
    Patient,
)
from db.patients import seal_diagnosis, seal_identifiers
from db.visibility import require_owner

NAMESPACE = uuid.UUID("5b3c6d5e-0f1a-4c2b-9d8e-7f6a5b4c3d2e")
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
)  # fmt: skip
# A practice's patients cluster in a few areas and ages, so the demo's do too (by patient
# number modulo 10): then de-identified counts over the 50 demo patients have cells
# above the suppression threshold as well as below it. NH's 036 is a sparsely populated
# area, reported as 000.
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


def demo_id(kind: str, number: int) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"{kind}-{number}")


def synthetic_patient(number: int, *, now: datetime) -> dict[str, Any]:
    rng = random.Random(number)
    postal_code, state = ZIPS[ZIP_SLOTS[number % 10]]
    # An age well inside its decade, so the band holds for months after seeding.
    age_days = int(365.25 * AGE_DECADES[number % 10] * 10) + rng.randrange(180, 9 * 365)
    return {
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
        # Spread creation times so pagination has a stable, realistic order.
        "created_at": now - timedelta(minutes=number),
        "updated_at": now - timedelta(minutes=number),
    }


def synthetic_diagnoses(number: int, patient: dict[str, Any]) -> list[dict[str, Any]]:
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


@dataclass(frozen=True, slots=True)
class SeedReport:
    patients: int
    baas: int
    breaches: int


async def seed_demo(
    connection: AsyncConnection,
    *,
    cipher: FieldCipher,
    patients: int = 50,
    now: datetime | None = None,
) -> SeedReport:
    now = now or datetime.now(UTC)
    await require_owner(connection)
    patient_rows = [
        seal_identifiers(cipher, row["id"], row)
        for row in (synthetic_patient(n, now=now) for n in range(1, patients + 1))
    ]
    for chunk in range(0, len(patient_rows), 1000):
        batch = patient_rows[chunk : chunk + 1000]
        await connection.execute(insert(Patient).on_conflict_do_nothing(), batch)
        diagnoses = [
            seal_diagnosis(cipher, d)
            for n, p in enumerate(batch, start=chunk + 1)
            for d in synthetic_diagnoses(n, p)
        ]
        await connection.execute(insert(Diagnosis).on_conflict_do_nothing(), diagnoses)
        consents = [
            {
                "id": demo_id("consent", n),
                "patient_id": p["id"],
                "consent_type": "TREATMENT",
                "status": "GRANTED",
                "effective_date": p["created_at"].date(),
                "recorded_at": p["created_at"],
            }
            for n, p in enumerate(batch, start=chunk + 1)
        ]
        await connection.execute(insert(Consent).on_conflict_do_nothing(), consents)

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
