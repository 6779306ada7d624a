"""Care-team history: every grant and removal of membership, kept.

Membership is what opens a patient's PHI to a clinician or nurse. Until now a removal
deleted the membership row and nothing recorded either change, so a grant of PHI access
could vanish without a trace (checklist I2). Each change is now a row here, which the
gateway may only INSERT and SELECT, and a security event in the audit trail. Existing
memberships are recorded as ADDED by their original author, at their original time.

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET LOCAL ROLE phigate_owner")
    op.create_table(
        "care_team_changes",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("patient_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("change", sa.String(length=10), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("changed_by", sa.String(length=100), nullable=False),
        sa.Column(
            "changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "change IN ('ADDED', 'REMOVED')", name=op.f("ck_care_team_changes_change")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["phigate.patients.id"],
            name=op.f("fk_care_team_changes_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["phigate.users.id"],
            name=op.f("fk_care_team_changes_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_care_team_changes")),
        schema="phigate",
    )
    op.create_index(
        "ix_care_team_changes_patient_changed",
        "care_team_changes",
        ["patient_id", "changed_at"],
        unique=False,
        schema="phigate",
    )
    op.execute(
        """
        INSERT INTO phigate.care_team_changes
            (patient_id, user_id, change, ends_at, changed_by, changed_at)
        SELECT patient_id, user_id, 'ADDED', ends_at, coalesce(added_by, 'unknown'), added_at
        FROM phigate.care_team_members
        """
    )
    op.execute("RESET ROLE")
    op.execute("GRANT SELECT, INSERT ON phigate.care_team_changes TO phigate_app")


def downgrade() -> None:
    op.execute("SET LOCAL ROLE phigate_owner")
    op.drop_table("care_team_changes", schema="phigate")
    op.execute("RESET ROLE")
