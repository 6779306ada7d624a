from __future__ import annotations

from datetime import date
from typing import Any

import strawberry

from domain.data_classes import DataClass, PhiCategory
from graph.directives import classified, phi
from graph.types.common import provided
from graph.types.enums import ConsentStatus, ConsentType, DeletionReason, RetentionClass

CLINICAL = PhiCategory.CLINICAL
CONTACT = PhiCategory.CONTACT
IDENTITY = PhiCategory.IDENTITY
IDENTIFIER = PhiCategory.IDENTIFIER
FINANCIAL = PhiCategory.FINANCIAL
COMPLIANCE = DataClass.COMPLIANCE
PUBLIC = DataClass.PUBLIC
UNSET: Any = strawberry.UNSET

_ADDRESS_COLUMNS = {
    "line": "address_line",
    "city": "address_city",
    "state": "address_state",
    "postal_code": "address_postal_code",
}
_PATIENT_COLUMNS = {
    "mrn": "mrn",
    "given_name": "given_name",
    "family_name": "family_name",
    "date_of_birth": "date_of_birth",
    "ssn": "ssn",
    "phone": "phone",
    "email": "email",
    "insurance_payer": "insurance_payer",
    "insurance_member_id": "insurance_member_id",
    "retention_class": "retention_class",
}


@strawberry.input
class AddressInput:
    line: str | None = phi(CONTACT, default=None)
    city: str | None = phi(CONTACT, default=None)
    state: str | None = phi(CONTACT, default=None, description="USPS code, e.g. MA.")
    postal_code: str | None = phi(CONTACT, default=None)


@strawberry.input
class DiagnosisInput:
    icd10_code: str = phi(CLINICAL, description="ICD-10-CM, e.g. E11.9.")
    description: str | None = phi(CLINICAL, default=None)
    onset_date: date | None = phi(CLINICAL, default=None)

    def to_values(self) -> dict[str, Any]:
        return {
            "icd10_code": self.icd10_code,
            "description": self.description,
            "onset_date": self.onset_date,
        }


def _columns(source: Any) -> dict[str, Any]:
    values = provided(source, _PATIENT_COLUMNS)
    if "retention_class" in values and values["retention_class"] is not None:
        values["retention_class"] = values["retention_class"].value
    address = getattr(source, "address", UNSET)
    if address is None:
        values.update(dict.fromkeys(_ADDRESS_COLUMNS.values()))
    elif address is not UNSET:
        values.update({column: getattr(address, name) for name, column in _ADDRESS_COLUMNS.items()})
    return values


@strawberry.input
class PatientCreateInput:
    mrn: str | None = phi(
        IDENTIFIER,
        default=UNSET,
        description=(
            "Left out, phigate assigns one. Only a caller who can reach every patient may"
            " choose it: for anyone else, 'already in use' would reveal a patient outside"
            " their care team."
        ),
    )
    given_name: str = phi(IDENTITY)
    family_name: str = phi(IDENTITY)
    date_of_birth: date = phi(IDENTITY)
    # Optional PHI has no default in the schema: a field the caller leaves out is not
    # in the coerced input at all, so it is neither decided on nor written.
    ssn: str | None = phi(IDENTIFIER, default=UNSET, description="NNN-NN-NNNN.")
    address: AddressInput | None = phi(CONTACT, default=UNSET)
    phone: str | None = phi(CONTACT, default=UNSET)
    email: str | None = phi(CONTACT, default=UNSET)
    insurance_payer: str | None = phi(FINANCIAL, default=UNSET)
    insurance_member_id: str | None = phi(IDENTIFIER, default=UNSET)
    retention_class: RetentionClass = classified(COMPLIANCE, default=RetentionClass.STANDARD)
    diagnoses: list[DiagnosisInput] | None = phi(
        CLINICAL, default=UNSET, description="Known diagnoses; none when left out."
    )

    def to_values(self) -> dict[str, Any]:
        return _columns(self)


@strawberry.input(description="Only the fields given are changed; null clears an optional field.")
class PatientUpdateInput:
    id: strawberry.ID = classified(PUBLIC)
    mrn: str | None = phi(IDENTIFIER, default=UNSET)
    given_name: str | None = phi(IDENTITY, default=UNSET)
    family_name: str | None = phi(IDENTITY, default=UNSET)
    date_of_birth: date | None = phi(IDENTITY, default=UNSET)
    ssn: str | None = phi(IDENTIFIER, default=UNSET)
    address: AddressInput | None = phi(CONTACT, default=UNSET)
    phone: str | None = phi(CONTACT, default=UNSET)
    email: str | None = phi(CONTACT, default=UNSET)
    insurance_payer: str | None = phi(FINANCIAL, default=UNSET)
    insurance_member_id: str | None = phi(IDENTIFIER, default=UNSET)
    retention_class: RetentionClass | None = classified(COMPLIANCE, default=UNSET)
    add_diagnoses: list[DiagnosisInput] | None = phi(CLINICAL, default=UNSET)
    remove_diagnosis_ids: list[strawberry.ID] | None = phi(CLINICAL, default=UNSET)

    def to_values(self) -> dict[str, Any]:
        return _columns(self)


@strawberry.input
class ConsentRecordInput:
    patient_id: strawberry.ID = classified(PUBLIC)
    consent_type: ConsentType = classified(COMPLIANCE)
    status: ConsentStatus = classified(COMPLIANCE)
    effective_date: date = classified(COMPLIANCE)


@strawberry.input(description="Set or release a legal hold; the reason is kept in its history.")
class LegalHoldInput:
    patient_id: strawberry.ID = classified(PUBLIC)
    reason: str = classified(
        COMPLIANCE, description="10 to 500 characters: the matter, not the patient's details."
    )


@strawberry.input(description="Delete a patient's record for good (not while on legal hold).")
class PatientDeleteInput:
    id: strawberry.ID = classified(PUBLIC)
    reason: DeletionReason = classified(COMPLIANCE)


@strawberry.input(
    description="Withhold a diagnosis from the patient's health plan, or stop withholding it"
    " (the patient paid out of pocket and asked, 45 CFR 164.522(a)(1)(vi))."
)
class DiagnosisRestrictionInput:
    diagnosis_id: strawberry.ID = classified(PUBLIC)
    restricted: bool = classified(COMPLIANCE)
