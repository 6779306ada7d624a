from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import ARRAY, CheckConstraint, Date, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import Base, all_of, one_of, utc_timestamp, uuid_pk
from domain.breaches import BreachStatus, NotificationMethod, NotificationRecipient, RiskConclusion
from domain.data_classes import PhiCategory


class BreachIncident(Base):
    __tablename__ = "breach_incidents"
    __table_args__ = (
        one_of("status", BreachStatus, "status"),
        one_of("risk_conclusion", RiskConclusion, "risk_conclusion"),
        all_of("phi_categories", PhiCategory, "phi_categories"),
        CheckConstraint("affected_count >= 0", name="affected_count"),
        CheckConstraint(
            "law_enforcement_delay_days BETWEEN 1 AND 365", name="law_enforcement_delay_days_range"
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    discovered_at: Mapped[datetime] = utc_timestamp()
    occurred_at: Mapped[datetime | None] = utc_timestamp(nullable=True)
    status: Mapped[str] = mapped_column(String(20))
    affected_count: Mapped[int] = mapped_column(Integer)
    phi_categories: Mapped[list[str]] = mapped_column(ARRAY(Text))
    # The four factors of §164.402(2), each recorded in words, and the conclusion.
    risk_nature_and_extent: Mapped[str | None] = mapped_column(Text)
    risk_unauthorized_recipient: Mapped[str | None] = mapped_column(Text)
    risk_acquired_or_viewed: Mapped[str | None] = mapped_column(Text)
    risk_mitigation: Mapped[str | None] = mapped_column(Text)
    risk_conclusion: Mapped[str | None] = mapped_column(String(40))
    risk_assessed_at: Mapped[datetime | None] = utc_timestamp(nullable=True)
    root_cause: Mapped[str | None] = mapped_column(Text)
    # §164.412: a delay requested by law enforcement, in days; deadlines move with it.
    law_enforcement_delay_days: Mapped[int | None] = mapped_column(Integer)
    remediation_actions: Mapped[list[str]] = mapped_column(ARRAY(Text))
    reported_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = utc_timestamp(server_now=True)
    updated_at: Mapped[datetime] = utc_timestamp(server_now=True)


class BreachAffectedPatient(Base):
    __tablename__ = "breach_affected_patients"

    breach_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("breach_incidents.id", ondelete="CASCADE"), primary_key=True
    )
    patient_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("patients.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class BreachJurisdiction(Base):
    """How many affected individuals reside in one State or jurisdiction (§164.406)."""

    __tablename__ = "breach_jurisdictions"
    __table_args__ = (CheckConstraint("affected_count > 0", name="affected_count"),)

    breach_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("breach_incidents.id", ondelete="CASCADE"), primary_key=True
    )
    jurisdiction: Mapped[str] = mapped_column(String(2), primary_key=True)
    affected_count: Mapped[int] = mapped_column(Integer)


class BreachNotification(Base):
    __tablename__ = "breach_notifications"
    __table_args__ = (
        one_of("recipient", NotificationRecipient, "recipient"),
        one_of("method", NotificationMethod, "method"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    breach_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("breach_incidents.id", ondelete="CASCADE"), index=True
    )
    recipient: Mapped[str] = mapped_column(String(30))
    method: Mapped[str] = mapped_column(String(30))
    sent_on: Mapped[date] = mapped_column(Date)
    recorded_by: Mapped[str | None] = mapped_column(String(100))
    recorded_at: Mapped[datetime] = utc_timestamp(server_now=True)
