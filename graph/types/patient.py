from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

import strawberry
from sqlalchemy.engine import Row

from domain.data_classes import DataClass, PhiCategory
from domain.patients import withheld_from_payer
from graph.directives import classified, phi
from graph.types.common import GraphInfo, PageInfo
from graph.types.enums import ConsentStatus, ConsentType, DeletionReason, RetentionClass

CLINICAL = PhiCategory.CLINICAL
CONTACT = PhiCategory.CONTACT
IDENTITY = PhiCategory.IDENTITY
IDENTIFIER = PhiCategory.IDENTIFIER
FINANCIAL = PhiCategory.FINANCIAL
COMPLIANCE = DataClass.COMPLIANCE
PUBLIC = DataClass.PUBLIC


@strawberry.type(description="A postal address in the United States.")
class Address:
    line: str | None = phi(CONTACT)
    city: str | None = phi(CONTACT)
    state: str | None = phi(CONTACT, description="USPS state or territory code.")
    postal_code: str | None = phi(CONTACT)


@strawberry.type(description="A diagnosis, coded in ICD-10-CM.")
class Diagnosis:
    description_sealed: strawberry.Private[bytes | None]
    id: strawberry.ID = classified(PUBLIC)
    icd10_code: str = phi(CLINICAL)
    onset_date: date | None = phi(CLINICAL)
    recorded_at: datetime = phi(CLINICAL)

    @phi(CLINICAL, description="Free text, stored encrypted; opened only when selected.")
    def description(self, info: GraphInfo) -> str | None:
        return info.context.require_cipher().open(
            "diagnoses", "description", self.id, self.description_sealed
        )

    payer_restricted: bool = classified(
        COMPLIANCE,
        description="Withheld from the patient's health plan at their request (paid out of"
        " pocket): reads for PAYMENT and OPERATIONS leave this diagnosis out.",
    )

    @classmethod
    def from_row(cls, row: Row[Any]) -> Diagnosis:
        return cls(
            id=strawberry.ID(str(row.id)),
            icd10_code=row.icd10_code,
            description_sealed=row.description_sealed,
            onset_date=row.onset_date,
            recorded_at=row.recorded_at,
            payer_restricted=row.payer_restricted,
        )


@strawberry.type(description="One consent decision; the latest of each type is in force.")
class Consent:
    id: strawberry.ID = classified(PUBLIC)
    consent_type: ConsentType = classified(COMPLIANCE)
    status: ConsentStatus = classified(COMPLIANCE)
    effective_date: date = classified(COMPLIANCE)
    recorded_at: datetime = classified(COMPLIANCE)

    @classmethod
    def from_row(cls, row: Row[Any]) -> Consent:
        return cls(
            id=strawberry.ID(str(row.id)),
            consent_type=ConsentType(row.consent_type),
            status=ConsentStatus(row.status),
            effective_date=row.effective_date,
            recorded_at=row.recorded_at,
        )


@strawberry.type(description="A legal hold suspends retention-driven deletion.")
class LegalHold:
    active: bool = classified(COMPLIANCE)
    reason: str | None = classified(COMPLIANCE)
    set_at: datetime | None = classified(COMPLIANCE)


@strawberry.type(description="A patient: PHI plus the compliance metadata that governs it.")
class Patient:
    row_id: strawberry.Private[uuid.UUID]
    ssn_sealed: strawberry.Private[bytes | None]
    member_id_sealed: strawberry.Private[bytes | None]
    id: strawberry.ID = classified(PUBLIC)
    mrn: str = phi(IDENTIFIER, description="Medical record number.")
    given_name: str = phi(IDENTITY)
    family_name: str = phi(IDENTITY)
    date_of_birth: date = phi(IDENTITY)
    address: Address | None = phi(CONTACT)
    phone: str | None = phi(CONTACT, description="E.164.")
    email: str | None = phi(CONTACT)
    insurance_payer: str | None = phi(FINANCIAL)
    retention_class: RetentionClass = classified(COMPLIANCE)
    legal_hold: LegalHold = classified(COMPLIANCE)
    created_at: datetime = classified(COMPLIANCE)
    updated_at: datetime = classified(COMPLIANCE)

    @phi(IDENTIFIER, description="Stored encrypted; opened only when selected.")
    def ssn(self, info: GraphInfo) -> str | None:
        # self.id is str(row_id) already: the AAD is built without formatting the UUID again.
        return info.context.require_cipher().open("patients", "ssn", self.id, self.ssn_sealed)

    @phi(IDENTIFIER, description="Stored encrypted; opened only when selected.")
    def insurance_member_id(self, info: GraphInfo) -> str | None:
        return info.context.require_cipher().open(
            "patients", "insurance_member_id", self.id, self.member_id_sealed
        )

    @phi(
        CLINICAL,
        description="For PAYMENT and OPERATIONS, without the diagnoses the patient restricted"
        " from their health plan (the restriction applied is recorded in the audit trail).",
    )
    async def diagnoses(self, info: GraphInfo) -> list[Diagnosis]:
        rows = await info.context.loaders.diagnoses.load(self.row_id)
        purpose = info.context.purpose
        kept = [row for row in rows if not withheld_from_payer(row.payer_restricted, purpose)]
        if len(kept) != len(rows):
            info.context.trail.note(
                "PAYER_RESTRICTION_APPLIED", "Patient.diagnoses", str(self.row_id)
            )
        return [Diagnosis.from_row(row) for row in kept]

    @classified(COMPLIANCE, description="Consent decisions, oldest first.")
    async def consents(self, info: GraphInfo) -> list[Consent]:
        return [
            Consent.from_row(row) for row in await info.context.loaders.consents.load(self.row_id)
        ]

    @classmethod
    def from_row(cls, row: Row[Any]) -> Patient:
        has_address = any(
            (row.address_line, row.address_city, row.address_state, row.address_postal_code)
        )
        return cls(
            row_id=row.id,
            id=strawberry.ID(str(row.id)),
            mrn=row.mrn,
            given_name=row.given_name,
            family_name=row.family_name,
            date_of_birth=row.date_of_birth,
            ssn_sealed=row.ssn_sealed,
            member_id_sealed=row.insurance_member_id_sealed,
            address=Address(
                line=row.address_line,
                city=row.address_city,
                state=row.address_state,
                postal_code=row.address_postal_code,
            )
            if has_address
            else None,
            phone=row.phone,
            email=row.email,
            insurance_payer=row.insurance_payer,
            retention_class=RetentionClass(row.retention_class),
            legal_hold=LegalHold(
                active=row.legal_hold, reason=row.legal_hold_reason, set_at=row.legal_hold_set_at
            ),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


@strawberry.type
class PatientEdge:
    cursor: str = classified(PUBLIC)
    node: Patient = classified(PUBLIC)


@strawberry.type(description="A page of patients in a stable order.")
class PatientConnection:
    edges: list[PatientEdge] = classified(PUBLIC)
    page_info: PageInfo = classified(PUBLIC)


@strawberry.type
class PatientPayload:
    patient: Patient = classified(PUBLIC)


@strawberry.type
class PatientDeletePayload:
    deleted_id: strawberry.ID = classified(PUBLIC)
    reason: DeletionReason = classified(COMPLIANCE)


@strawberry.type(description="A legal hold set or released: who, when, why.")
class LegalHoldChange:
    action: str = classified(COMPLIANCE, description="SET or RELEASED.")
    reason: str = classified(COMPLIANCE)
    actor_id: str | None = classified(COMPLIANCE)
    occurred_at: datetime = classified(COMPLIANCE)


@strawberry.type
class ConsentPayload:
    consent: Consent = classified(COMPLIANCE)
    patient: Patient = classified(PUBLIC)


@strawberry.type
class DiagnosisRestrictionPayload:
    diagnosis_id: strawberry.ID = classified(PUBLIC)
    patient_id: strawberry.ID = classified(PUBLIC)
    payer_restricted: bool = classified(COMPLIANCE)
