from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import ARRAY, Date, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import Base, all_of, one_of, utc_timestamp, uuid_pk
from domain.baas import BaaStatus
from domain.data_classes import PhiCategory


class Baa(Base):
    __tablename__ = "baas"
    __table_args__ = (
        one_of("status", BaaStatus, "status"),
        all_of("phi_categories", PhiCategory, "phi_categories"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    vendor_name: Mapped[str] = mapped_column(String(200))
    vendor_contact_name: Mapped[str | None] = mapped_column(String(200))
    vendor_contact_email: Mapped[str | None] = mapped_column(String(254))
    services: Mapped[list[str]] = mapped_column(ARRAY(Text))
    phi_categories: Mapped[list[str]] = mapped_column(ARRAY(Text))
    status: Mapped[str] = mapped_column(String(12))
    effective_date: Mapped[date | None] = mapped_column(Date)
    expiry_date: Mapped[date | None] = mapped_column(Date, index=True)
    signed_by: Mapped[str | None] = mapped_column(String(200))
    signed_at: Mapped[datetime | None] = utc_timestamp(nullable=True)
    document_sha256: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = utc_timestamp(server_now=True)
    updated_at: Mapped[datetime] = utc_timestamp(server_now=True)


class BaaChange(Base):
    """One changed field of a BAA: who changed it, when, from what to what."""

    __tablename__ = "baa_changes"

    id: Mapped[uuid.UUID] = uuid_pk()
    baa_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("baas.id", ondelete="CASCADE"), index=True)
    field: Mapped[str] = mapped_column(String(40))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    changed_by: Mapped[str | None] = mapped_column(String(100))
    changed_at: Mapped[datetime] = utc_timestamp(server_now=True)


class PhiService(Base):
    """A service (ours or a vendor's) that creates, receives, keeps or sends PHI: each
    needs an active BAA with its vendor that names it."""

    __tablename__ = "phi_services"
    __table_args__ = (
        all_of("phi_categories", PhiCategory, "phi_categories"),
        UniqueConstraint("vendor_name", "name"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(200))
    vendor_name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    phi_categories: Mapped[list[str]] = mapped_column(ARRAY(Text))
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = utc_timestamp(server_now=True)
