"""Legal hold history: every hold set and released, with who, when and why. Append-only
for the gateway; rows go with their patient, who cannot be deleted while held.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET LOCAL ROLE phigate_owner")
    op.create_table(
        "legal_hold_events",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("patient_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor_id", sa.String(length=100), nullable=True),
        sa.Column(
            "occurred_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "action IN ('SET', 'RELEASED')", name=op.f("ck_legal_hold_events_action")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["phigate.patients.id"],
            name=op.f("fk_legal_hold_events_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_legal_hold_events")),
        schema="phigate",
    )
    op.create_index(
        op.f("ix_legal_hold_events_patient_id"),
        "legal_hold_events",
        ["patient_id"],
        schema="phigate",
    )
    for statement in (
        "ALTER TABLE phigate.legal_hold_events ENABLE ROW LEVEL SECURITY",
        "CREATE POLICY legal_hold_events_by_patient ON phigate.legal_hold_events"
        " USING (phigate.patient_visible(patient_id))"
        " WITH CHECK (phigate.patient_visible(patient_id))",
        "GRANT SELECT, INSERT ON phigate.legal_hold_events TO phigate_app",
    ):
        op.execute(statement)
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute("SET LOCAL ROLE phigate_owner")
    op.drop_table("legal_hold_events", schema="phigate")
    op.execute("RESET ROLE")
