from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, Identity, MetaData, String, func, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from db.models.base import NAMING_CONVENTION

AUDIT_SCHEMA = "audit"


class AuditBase(DeclarativeBase):
    metadata = MetaData(schema=AUDIT_SCHEMA, naming_convention=NAMING_CONVENTION)


class AuditEvent(AuditBase):
    """The audit trail: PHI access and security events. Identifiers only, never a
    value. Partitioned by month of ``occurred_at``; owned by a role the gateway never
    uses, which may only INSERT and SELECT."""

    __tablename__ = "events"
    __table_args__ = {"postgresql_partition_by": "RANGE (occurred_at)"}

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), primary_key=True, server_default=func.now()
    )
    category: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(40))
    outcome: Mapped[str] = mapped_column(String(10))
    actor_id: Mapped[str | None] = mapped_column(String(100))
    actor_kind: Mapped[str | None] = mapped_column(String(10))
    role: Mapped[str | None] = mapped_column(String(30))
    session_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    purpose: Mapped[str | None] = mapped_column(String(20))
    break_glass: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    operation_name: Mapped[str | None] = mapped_column(String(200))
    document_hash: Mapped[str | None] = mapped_column(String(64))
    field_path: Mapped[str | None] = mapped_column(String(200))
    record_id: Mapped[str | None] = mapped_column(String(100))
    client_ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(256))
    request_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(60))
    # For failures against an unknown account: SHA-256 of the submitted username,
    # so repeated guesses can be correlated without storing what was typed.
    subject_hash: Mapped[str | None] = mapped_column(String(64))
