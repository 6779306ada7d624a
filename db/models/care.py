from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import Base, utc_timestamp, uuid_pk


class CareTeamMember(Base):
    """A care relationship: clinicians and nurses reach only their patients' rows."""

    __tablename__ = "care_team_members"

    patient_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("patients.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    added_by: Mapped[str | None] = mapped_column(String(100))
    added_at: Mapped[datetime] = utc_timestamp(server_now=True)
    ends_at: Mapped[datetime | None] = utc_timestamp(nullable=True)


class CareTeamChange(Base):
    """Every grant and removal of care-team membership, kept: membership is what opens a
    patient's PHI to a clinician or nurse, so a grant must not vanish when it ends. The
    gateway may only add and read these rows."""

    __tablename__ = "care_team_changes"
    __table_args__ = (
        CheckConstraint("change IN ('ADDED', 'REMOVED')", name="change"),
        Index("ix_care_team_changes_patient_changed", "patient_id", "changed_at"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    change: Mapped[str] = mapped_column(String(10))
    ends_at: Mapped[datetime | None] = utc_timestamp(nullable=True)
    changed_by: Mapped[str] = mapped_column(String(100))
    changed_at: Mapped[datetime] = utc_timestamp(server_now=True)


class BreakGlassEpisode(Base):
    """Emergency access to one patient outside the care team, for a bounded time, with
    a written reason; every one is reviewed by compliance."""

    __tablename__ = "break_glass_episodes"
    __table_args__ = (
        Index("ix_break_glass_episodes_user_patient", "user_id", "patient_id", "expires_at"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # Kept (as NULL) when the patient is later deleted: the episode still needs review.
    patient_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("patients.id", ondelete="SET NULL")
    )
    reason: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime] = utc_timestamp(server_now=True)
    expires_at: Mapped[datetime] = utc_timestamp()
    reviewed_at: Mapped[datetime | None] = utc_timestamp(nullable=True, index=False)
    reviewed_by: Mapped[str | None] = mapped_column(String(100))
    review_note: Mapped[str | None] = mapped_column(Text)
