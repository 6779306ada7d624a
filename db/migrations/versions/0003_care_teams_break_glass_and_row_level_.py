"""Care teams, break-glass episodes and row-level security on PHI tables.

The gateway sets two transaction-local settings before touching PHI:
phigate.actor_id (the caller) and phigate.row_scope (ALL, CARE_TEAM or NONE). Unset
means no rows: the policies fail closed. The gateway's role is not the tables' owner
and has no BYPASSRLS, so these policies bind it. Actor columns become text, since
services and identity-provider users have ids that are not UUIDs.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


VISIBLE = """
CREATE FUNCTION phigate.patient_visible(pid uuid) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE current_setting('phigate.row_scope', true)
        WHEN 'ALL' THEN true
        WHEN 'CARE_TEAM' THEN
            EXISTS (
                SELECT 1 FROM phigate.care_team_members m
                WHERE m.patient_id = pid
                  AND m.user_id::text = current_setting('phigate.actor_id', true)
                  AND (m.ends_at IS NULL OR m.ends_at > now())
            )
            OR EXISTS (
                SELECT 1 FROM phigate.break_glass_episodes b
                WHERE b.patient_id = pid
                  AND b.user_id::text = current_setting('phigate.actor_id', true)
                  AND b.expires_at > now()
            )
        ELSE false
    END
$$
"""

CAN_CREATE = "current_setting('phigate.row_scope', true) IN ('ALL', 'CARE_TEAM')"

POLICIES = (
    "ALTER TABLE phigate.patients ENABLE ROW LEVEL SECURITY",
    "CREATE POLICY patients_read ON phigate.patients FOR SELECT USING (phigate.patient_visible(id))",
    f"CREATE POLICY patients_create ON phigate.patients FOR INSERT WITH CHECK ({CAN_CREATE})",
    "CREATE POLICY patients_update ON phigate.patients FOR UPDATE USING (phigate.patient_visible(id))"
    " WITH CHECK (phigate.patient_visible(id))",
    "CREATE POLICY patients_delete ON phigate.patients FOR DELETE USING (phigate.patient_visible(id))",
    *(
        statement
        for table in ("diagnoses", "consents", "breach_affected_patients")
        for statement in (
            f"ALTER TABLE phigate.{table} ENABLE ROW LEVEL SECURITY",
            f"CREATE POLICY {table}_by_patient ON phigate.{table} USING (phigate.patient_visible(patient_id))"
            " WITH CHECK (phigate.patient_visible(patient_id))",
        )
    ),
)

GRANTS = (
    "GRANT SELECT, INSERT, UPDATE, DELETE ON phigate.care_team_members TO phigate_app",
    "GRANT SELECT, INSERT, UPDATE ON phigate.break_glass_episodes TO phigate_app",
    "GRANT EXECUTE ON FUNCTION phigate.patient_visible(uuid) TO phigate_app",
)


def upgrade() -> None:
    op.execute("SET LOCAL ROLE phigate_owner")
    op.create_table(
        "break_glass_episodes",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("patient_id", sa.UUID(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "opened_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reviewed_by", sa.String(length=100), nullable=True),
        sa.Column("review_note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["phigate.patients.id"],
            name=op.f("fk_break_glass_episodes_patient_id_patients"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["phigate.users.id"],
            name=op.f("fk_break_glass_episodes_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_break_glass_episodes")),
        schema="phigate",
    )
    op.create_index(
        "ix_break_glass_episodes_user_patient",
        "break_glass_episodes",
        ["user_id", "patient_id", "expires_at"],
        unique=False,
        schema="phigate",
    )
    op.create_table(
        "care_team_members",
        sa.Column("patient_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("added_by", sa.String(length=100), nullable=True),
        sa.Column(
            "added_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["phigate.patients.id"],
            name=op.f("fk_care_team_members_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["phigate.users.id"],
            name=op.f("fk_care_team_members_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("patient_id", "user_id", name=op.f("pk_care_team_members")),
        schema="phigate",
    )
    op.create_index(
        op.f("ix_care_team_members_user_id"),
        "care_team_members",
        ["user_id"],
        unique=False,
        schema="phigate",
    )
    op.alter_column(
        "baa_changes",
        "changed_by",
        existing_type=sa.UUID(),
        type_=sa.String(length=100),
        existing_nullable=True,
        schema="phigate",
    )
    op.alter_column(
        "baas",
        "created_by",
        existing_type=sa.UUID(),
        type_=sa.String(length=100),
        existing_nullable=True,
        schema="phigate",
    )
    op.alter_column(
        "breach_incidents",
        "reported_by",
        existing_type=sa.UUID(),
        type_=sa.String(length=100),
        existing_nullable=True,
        schema="phigate",
    )
    op.alter_column(
        "breach_notifications",
        "recorded_by",
        existing_type=sa.UUID(),
        type_=sa.String(length=100),
        existing_nullable=True,
        schema="phigate",
    )
    op.alter_column(
        "consents",
        "recorded_by",
        existing_type=sa.UUID(),
        type_=sa.String(length=100),
        existing_nullable=True,
        schema="phigate",
    )
    op.alter_column(
        "diagnoses",
        "recorded_by",
        existing_type=sa.UUID(),
        type_=sa.String(length=100),
        existing_nullable=True,
        schema="phigate",
    )
    op.alter_column(
        "patients",
        "legal_hold_set_by",
        existing_type=sa.UUID(),
        type_=sa.String(length=100),
        existing_nullable=True,
        schema="phigate",
    )
    op.alter_column(
        "patients",
        "created_by",
        existing_type=sa.UUID(),
        type_=sa.String(length=100),
        existing_nullable=True,
        schema="phigate",
    )
    op.execute(VISIBLE)
    for statement in POLICIES:
        op.execute(statement)
    op.execute("RESET ROLE")
    for statement in GRANTS:
        op.execute(statement)


def downgrade() -> None:
    for table in ("patients", "diagnoses", "consents", "breach_affected_patients"):
        op.execute(f"ALTER TABLE phigate.{table} DISABLE ROW LEVEL SECURITY")
    op.execute("DROP POLICY patients_read ON phigate.patients")
    op.execute("DROP POLICY patients_create ON phigate.patients")
    op.execute("DROP POLICY patients_update ON phigate.patients")
    op.execute("DROP POLICY patients_delete ON phigate.patients")
    for table in ("diagnoses", "consents", "breach_affected_patients"):
        op.execute(f"DROP POLICY {table}_by_patient ON phigate.{table}")
    op.execute("DROP FUNCTION phigate.patient_visible(uuid)")
    op.alter_column(
        "patients",
        "created_by",
        existing_type=sa.String(length=100),
        type_=sa.UUID(),
        existing_nullable=True,
        schema="phigate",
    )
    op.alter_column(
        "patients",
        "legal_hold_set_by",
        existing_type=sa.String(length=100),
        type_=sa.UUID(),
        existing_nullable=True,
        schema="phigate",
    )
    op.alter_column(
        "diagnoses",
        "recorded_by",
        existing_type=sa.String(length=100),
        type_=sa.UUID(),
        existing_nullable=True,
        schema="phigate",
    )
    op.alter_column(
        "consents",
        "recorded_by",
        existing_type=sa.String(length=100),
        type_=sa.UUID(),
        existing_nullable=True,
        schema="phigate",
    )
    op.alter_column(
        "breach_notifications",
        "recorded_by",
        existing_type=sa.String(length=100),
        type_=sa.UUID(),
        existing_nullable=True,
        schema="phigate",
    )
    op.alter_column(
        "breach_incidents",
        "reported_by",
        existing_type=sa.String(length=100),
        type_=sa.UUID(),
        existing_nullable=True,
        schema="phigate",
    )
    op.alter_column(
        "baas",
        "created_by",
        existing_type=sa.String(length=100),
        type_=sa.UUID(),
        existing_nullable=True,
        schema="phigate",
    )
    op.alter_column(
        "baa_changes",
        "changed_by",
        existing_type=sa.String(length=100),
        type_=sa.UUID(),
        existing_nullable=True,
        schema="phigate",
    )
    op.drop_index(
        op.f("ix_care_team_members_user_id"), table_name="care_team_members", schema="phigate"
    )
    op.drop_table("care_team_members", schema="phigate")
    op.drop_index(
        "ix_break_glass_episodes_user_patient", table_name="break_glass_episodes", schema="phigate"
    )
    op.drop_table("break_glass_episodes", schema="phigate")
