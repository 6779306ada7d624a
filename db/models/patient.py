from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import Base, one_of, utc_timestamp, uuid_pk
from domain.patients import ConsentStatus, ConsentType, RetentionClass


class Patient(Base):
    __tablename__ = "patients"
    __table_args__ = (
        one_of("retention_class", RetentionClass, "retention_class"),
        Index("ix_patients_created_at_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    mrn: Mapped[str] = mapped_column(String(32), unique=True)
    given_name: Mapped[str] = mapped_column(String(100))
    family_name: Mapped[str] = mapped_column(String(100))
    date_of_birth: Mapped[date] = mapped_column(Date)
    # Encrypted (db.crypto envelope, AAD "patients.<column>:<id>"); SSN also as a
    # keyed blind index for exact-match lookup.
    ssn_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    ssn_index: Mapped[bytes | None] = mapped_column(LargeBinary, index=True)
    address_line: Mapped[str | None] = mapped_column(String(200))
    address_city: Mapped[str | None] = mapped_column(String(100))
    address_state: Mapped[str | None] = mapped_column(String(2))
    address_postal_code: Mapped[str | None] = mapped_column(String(10))
    phone: Mapped[str | None] = mapped_column(String(16))
    email: Mapped[str | None] = mapped_column(String(254))
    insurance_payer: Mapped[str | None] = mapped_column(String(100))
    insurance_member_id_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    retention_class: Mapped[str] = mapped_column(
        String(20), server_default=text(f"'{RetentionClass.STANDARD.value}'")
    )
    legal_hold: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    legal_hold_reason: Mapped[str | None] = mapped_column(Text)
    legal_hold_set_by: Mapped[str | None] = mapped_column(String(100))
    legal_hold_set_at: Mapped[datetime | None] = utc_timestamp(nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = utc_timestamp(server_now=True)
    updated_at: Mapped[datetime] = utc_timestamp(server_now=True)


class Diagnosis(Base):
    __tablename__ = "diagnoses"

    id: Mapped[uuid.UUID] = uuid_pk()
    patient_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("patients.id", ondelete="CASCADE"), index=True
    )
    icd10_code: Mapped[str] = mapped_column(String(8))
    # Free text, so encrypted like the identifiers (AAD "diagnoses.description:<id>").
    description_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    onset_date: Mapped[date | None] = mapped_column(Date)
    recorded_by: Mapped[str | None] = mapped_column(String(100))
    recorded_at: Mapped[datetime] = utc_timestamp(server_now=True)
    # Withheld from the health plan at the patient's request (paid out of pocket,
    # 45 CFR 164.522(a)(1)(vi)): reads for PAYMENT leave it out.
    payer_restricted: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    payer_restricted_by: Mapped[str | None] = mapped_column(String(100))
    payer_restricted_at: Mapped[datetime | None] = utc_timestamp(nullable=True)


class Consent(Base):
    """One consent decision; the latest per (patient, type) is in force."""

    __tablename__ = "consents"
    __table_args__ = (
        one_of("consent_type", ConsentType, "consent_type"),
        one_of("status", ConsentStatus, "status"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    patient_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("patients.id", ondelete="CASCADE"), index=True
    )
    consent_type: Mapped[str] = mapped_column(String(30))
    status: Mapped[str] = mapped_column(String(10))
    effective_date: Mapped[date] = mapped_column(Date)
    recorded_by: Mapped[str | None] = mapped_column(String(100))
    recorded_at: Mapped[datetime] = utc_timestamp(server_now=True)


class LegalHoldEvent(Base):
    """A legal hold set or released on a patient's record: who, when, why."""

    __tablename__ = "legal_hold_events"
    __table_args__ = (CheckConstraint("action IN ('SET', 'RELEASED')", name="action"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    patient_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("patients.id", ondelete="CASCADE"), index=True
    )
    action: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(Text)
    actor_id: Mapped[str | None] = mapped_column(String(100))
    occurred_at: Mapped[datetime] = utc_timestamp(server_now=True)
