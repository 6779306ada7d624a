"""Initial schema: roles, the phigate schema, patients, BAAs and breach incidents.

The schema and its tables belong to phigate_owner, a role nobody logs in as; the
gateway logs in as phigate_app, which may read and write rows but not change the
schema, and may only append to change history.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


ROLES = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'phigate_owner') THEN
        CREATE ROLE phigate_owner NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'phigate_app') THEN
        -- LOGIN without a password: the embedded server trusts its private socket; on
        -- a managed server the operator sets a password (see the README).
        CREATE ROLE phigate_app LOGIN;
    END IF;
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('GRANT phigate_owner TO %I', current_user);
    END IF;
END
$$;
"""

GRANTS = (
    "REVOKE ALL ON SCHEMA phigate FROM PUBLIC",
    "GRANT USAGE ON SCHEMA phigate TO phigate_app",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA phigate TO phigate_app",
    "REVOKE UPDATE, DELETE ON phigate.baa_changes FROM phigate_app",
)


def upgrade() -> None:
    op.execute(ROLES)
    op.execute("CREATE SCHEMA IF NOT EXISTS phigate AUTHORIZATION phigate_owner")
    op.execute("SET LOCAL ROLE phigate_owner")
    op.create_table(
        "baas",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("vendor_name", sa.String(length=200), nullable=False),
        sa.Column("vendor_contact_name", sa.String(length=200), nullable=True),
        sa.Column("vendor_contact_email", sa.String(length=254), nullable=True),
        sa.Column("services", sa.ARRAY(sa.Text()), nullable=False),
        sa.Column("phi_categories", sa.ARRAY(sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("effective_date", sa.Date(), nullable=True),
        sa.Column("expiry_date", sa.Date(), nullable=True),
        sa.Column("signed_by", sa.String(length=200), nullable=True),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("document_sha256", sa.String(length=64), nullable=True),
        sa.Column("created_by", sa.UUID(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "phi_categories <@ ARRAY['IDENTITY', 'CONTACT', 'IDENTIFIER', 'CLINICAL', 'FINANCIAL']::text[]",
            name=op.f("ck_baas_phi_categories"),
        ),
        sa.CheckConstraint(
            "status IN ('DRAFT', 'SENT', 'ACTIVE', 'EXPIRED', 'TERMINATED')",
            name=op.f("ck_baas_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_baas")),
        schema="phigate",
    )
    op.create_index(
        op.f("ix_baas_expiry_date"), "baas", ["expiry_date"], unique=False, schema="phigate"
    )
    op.create_table(
        "breach_incidents",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("discovered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("affected_count", sa.Integer(), nullable=False),
        sa.Column("phi_categories", sa.ARRAY(sa.Text()), nullable=False),
        sa.Column("risk_nature_and_extent", sa.Text(), nullable=True),
        sa.Column("risk_unauthorized_recipient", sa.Text(), nullable=True),
        sa.Column("risk_acquired_or_viewed", sa.Text(), nullable=True),
        sa.Column("risk_mitigation", sa.Text(), nullable=True),
        sa.Column("risk_conclusion", sa.String(length=40), nullable=True),
        sa.Column("risk_assessed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("root_cause", sa.Text(), nullable=True),
        sa.Column("remediation_actions", sa.ARRAY(sa.Text()), nullable=False),
        sa.Column("reported_by", sa.UUID(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "phi_categories <@ ARRAY['IDENTITY', 'CONTACT', 'IDENTIFIER', 'CLINICAL', 'FINANCIAL']::text[]",
            name=op.f("ck_breach_incidents_phi_categories"),
        ),
        sa.CheckConstraint(
            "risk_conclusion IN ('LOW_PROBABILITY_OF_COMPROMISE', 'BREACH_PRESUMED')",
            name=op.f("ck_breach_incidents_risk_conclusion"),
        ),
        sa.CheckConstraint(
            "status IN ('REPORTED', 'UNDER_ASSESSMENT', 'CONFIRMED_BREACH', 'NOT_A_BREACH', 'NOTIFYING', 'CLOSED')",
            name=op.f("ck_breach_incidents_status"),
        ),
        sa.CheckConstraint("affected_count >= 0", name=op.f("ck_breach_incidents_affected_count")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_breach_incidents")),
        schema="phigate",
    )
    op.create_table(
        "patients",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("mrn", sa.String(length=32), nullable=False),
        sa.Column("given_name", sa.String(length=100), nullable=False),
        sa.Column("family_name", sa.String(length=100), nullable=False),
        sa.Column("date_of_birth", sa.Date(), nullable=False),
        sa.Column("ssn", sa.String(length=11), nullable=True),
        sa.Column("address_line", sa.String(length=200), nullable=True),
        sa.Column("address_city", sa.String(length=100), nullable=True),
        sa.Column("address_state", sa.String(length=2), nullable=True),
        sa.Column("address_postal_code", sa.String(length=10), nullable=True),
        sa.Column("phone", sa.String(length=16), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("insurance_payer", sa.String(length=100), nullable=True),
        sa.Column("insurance_member_id", sa.String(length=40), nullable=True),
        sa.Column(
            "retention_class",
            sa.String(length=20),
            server_default=sa.text("'STANDARD'"),
            nullable=False,
        ),
        sa.Column("legal_hold", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("legal_hold_reason", sa.Text(), nullable=True),
        sa.Column("legal_hold_set_by", sa.UUID(), nullable=True),
        sa.Column("legal_hold_set_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.UUID(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "retention_class IN ('STANDARD', 'MINOR', 'RESEARCH')",
            name=op.f("ck_patients_retention_class"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patients")),
        sa.UniqueConstraint("mrn", name=op.f("uq_patients_mrn")),
        schema="phigate",
    )
    op.create_index(
        "ix_patients_created_at_id",
        "patients",
        ["created_at", "id"],
        unique=False,
        schema="phigate",
    )
    op.create_table(
        "baa_changes",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("baa_id", sa.UUID(), nullable=False),
        sa.Column("field", sa.String(length=40), nullable=False),
        sa.Column("old_value", sa.Text(), nullable=True),
        sa.Column("new_value", sa.Text(), nullable=True),
        sa.Column("changed_by", sa.UUID(), nullable=True),
        sa.Column(
            "changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["baa_id"],
            ["phigate.baas.id"],
            name=op.f("fk_baa_changes_baa_id_baas"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_baa_changes")),
        schema="phigate",
    )
    op.create_index(
        op.f("ix_baa_changes_baa_id"), "baa_changes", ["baa_id"], unique=False, schema="phigate"
    )
    op.create_table(
        "breach_affected_patients",
        sa.Column("breach_id", sa.UUID(), nullable=False),
        sa.Column("patient_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["breach_id"],
            ["phigate.breach_incidents.id"],
            name=op.f("fk_breach_affected_patients_breach_id_breach_incidents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["phigate.patients.id"],
            name=op.f("fk_breach_affected_patients_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "breach_id", "patient_id", name=op.f("pk_breach_affected_patients")
        ),
        schema="phigate",
    )
    op.create_index(
        op.f("ix_breach_affected_patients_patient_id"),
        "breach_affected_patients",
        ["patient_id"],
        unique=False,
        schema="phigate",
    )
    op.create_table(
        "breach_jurisdictions",
        sa.Column("breach_id", sa.UUID(), nullable=False),
        sa.Column("jurisdiction", sa.String(length=2), nullable=False),
        sa.Column("affected_count", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "affected_count > 0", name=op.f("ck_breach_jurisdictions_affected_count")
        ),
        sa.ForeignKeyConstraint(
            ["breach_id"],
            ["phigate.breach_incidents.id"],
            name=op.f("fk_breach_jurisdictions_breach_id_breach_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("breach_id", "jurisdiction", name=op.f("pk_breach_jurisdictions")),
        schema="phigate",
    )
    op.create_table(
        "breach_notifications",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("breach_id", sa.UUID(), nullable=False),
        sa.Column("recipient", sa.String(length=30), nullable=False),
        sa.Column("method", sa.String(length=30), nullable=False),
        sa.Column("sent_on", sa.Date(), nullable=False),
        sa.Column("recorded_by", sa.UUID(), nullable=True),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "method IN ('FIRST_CLASS_MAIL', 'EMAIL', 'SUBSTITUTE_WEBSITE', 'TELEPHONE', 'HHS_PORTAL', 'PRESS_RELEASE')",
            name=op.f("ck_breach_notifications_method"),
        ),
        sa.CheckConstraint(
            "recipient IN ('INDIVIDUALS', 'HHS', 'MEDIA', 'STATE_ATTORNEY_GENERAL')",
            name=op.f("ck_breach_notifications_recipient"),
        ),
        sa.ForeignKeyConstraint(
            ["breach_id"],
            ["phigate.breach_incidents.id"],
            name=op.f("fk_breach_notifications_breach_id_breach_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_breach_notifications")),
        schema="phigate",
    )
    op.create_index(
        op.f("ix_breach_notifications_breach_id"),
        "breach_notifications",
        ["breach_id"],
        unique=False,
        schema="phigate",
    )
    op.create_table(
        "consents",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("patient_id", sa.UUID(), nullable=False),
        sa.Column("consent_type", sa.String(length=30), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("effective_date", sa.Date(), nullable=False),
        sa.Column("recorded_by", sa.UUID(), nullable=True),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "consent_type IN ('TREATMENT', 'DATA_SHARING', 'RESEARCH', 'MARKETING', 'PSYCHOTHERAPY_NOTES')",
            name=op.f("ck_consents_consent_type"),
        ),
        sa.CheckConstraint("status IN ('GRANTED', 'REVOKED')", name=op.f("ck_consents_status")),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["phigate.patients.id"],
            name=op.f("fk_consents_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
        schema="phigate",
    )
    op.create_index(
        op.f("ix_consents_patient_id"), "consents", ["patient_id"], unique=False, schema="phigate"
    )
    op.create_table(
        "diagnoses",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("patient_id", sa.UUID(), nullable=False),
        sa.Column("icd10_code", sa.String(length=8), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("onset_date", sa.Date(), nullable=True),
        sa.Column("recorded_by", sa.UUID(), nullable=True),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["phigate.patients.id"],
            name=op.f("fk_diagnoses_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_diagnoses")),
        schema="phigate",
    )
    op.create_index(
        op.f("ix_diagnoses_patient_id"), "diagnoses", ["patient_id"], unique=False, schema="phigate"
    )
    op.execute("RESET ROLE")
    for statement in GRANTS:
        op.execute(statement)


def downgrade() -> None:
    op.drop_index(op.f("ix_diagnoses_patient_id"), table_name="diagnoses", schema="phigate")
    op.drop_table("diagnoses", schema="phigate")
    op.drop_index(op.f("ix_consents_patient_id"), table_name="consents", schema="phigate")
    op.drop_table("consents", schema="phigate")
    op.drop_index(
        op.f("ix_breach_notifications_breach_id"),
        table_name="breach_notifications",
        schema="phigate",
    )
    op.drop_table("breach_notifications", schema="phigate")
    op.drop_table("breach_jurisdictions", schema="phigate")
    op.drop_index(
        op.f("ix_breach_affected_patients_patient_id"),
        table_name="breach_affected_patients",
        schema="phigate",
    )
    op.drop_table("breach_affected_patients", schema="phigate")
    op.drop_index(op.f("ix_baa_changes_baa_id"), table_name="baa_changes", schema="phigate")
    op.drop_table("baa_changes", schema="phigate")
    op.drop_index("ix_patients_created_at_id", table_name="patients", schema="phigate")
    op.drop_table("patients", schema="phigate")
    op.drop_table("breach_incidents", schema="phigate")
    op.drop_index(op.f("ix_baas_expiry_date"), table_name="baas", schema="phigate")
    op.drop_table("baas", schema="phigate")
    op.execute("DROP SCHEMA phigate")
