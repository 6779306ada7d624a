"""Identity (users, sessions, refresh tokens, OAuth2 clients, signing keys, rate-limit
counters) and the audit trail's table.

The audit schema belongs to phigate_audit_owner, a second role nobody logs in as; the
gateway may only INSERT into and SELECT from it. Grants are per table and minimal:
users are disabled, never deleted, by the gateway.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


AUDIT_ROLE = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'phigate_audit_owner') THEN
        CREATE ROLE phigate_audit_owner NOLOGIN;
    END IF;
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('GRANT phigate_audit_owner TO %I', current_user);
    END IF;
END
$$;
"""

GRANTS = (
    "GRANT SELECT, INSERT, UPDATE ON phigate.users, phigate.sessions, phigate.refresh_tokens,"
    " phigate.oauth_clients, phigate.signing_keys TO phigate_app",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON phigate.rate_limits TO phigate_app",
    "REVOKE ALL ON SCHEMA audit FROM PUBLIC",
    "GRANT USAGE ON SCHEMA audit TO phigate_app",
    "GRANT SELECT, INSERT ON audit.events TO phigate_app",
)


def upgrade() -> None:
    op.execute("SET LOCAL ROLE phigate_owner")
    op.create_table(
        "oauth_clients",
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("secret_hash", sa.Text(), nullable=False),
        sa.Column("scopes", sa.ARRAY(sa.Text()), nullable=False),
        sa.Column(
            "ip_allowlist",
            sa.ARRAY(postgresql.CIDR()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column(
            "status", sa.String(length=10), server_default=sa.text("'ACTIVE'"), nullable=False
        ),
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
            "scopes <@ ARRAY['patients:read', 'patients:write', 'baas:read', 'baas:write', 'breaches:read', 'breaches:write', 'audit:read', 'analytics:read']::text[]",
            name=op.f("ck_oauth_clients_scopes"),
        ),
        sa.CheckConstraint(
            "status IN ('ACTIVE', 'DISABLED')", name=op.f("ck_oauth_clients_status")
        ),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_oauth_clients")),
        sa.UniqueConstraint("name", name=op.f("uq_oauth_clients_name")),
        schema="phigate",
    )
    op.create_table(
        "rate_limits",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rate_limits")),
        schema="phigate",
    )
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("algorithm", sa.String(length=10), nullable=False),
        sa.Column("public_jwk", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("private_key_ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_signing_keys")),
        schema="phigate",
    )
    op.create_table(
        "users",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=30), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("totp_secret_ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("totp_last_step", sa.BigInteger(), nullable=True),
        sa.Column(
            "status", sa.String(length=10), server_default=sa.text("'ACTIVE'"), nullable=False
        ),
        sa.Column("failed_logins", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("demo", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
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
            "role IN ('CLINICIAN', 'NURSE', 'BILLING', 'COMPLIANCE_OFFICER', 'AUDITOR', 'ANALYST', 'ADMIN')",
            name=op.f("ck_users_role"),
        ),
        sa.CheckConstraint("status IN ('ACTIVE', 'DISABLED')", name=op.f("ck_users_status")),
        sa.CheckConstraint("failed_logins >= 0", name=op.f("ck_users_failed_logins")),
        sa.CheckConstraint("username = lower(username)", name=op.f("ck_users_username_lower_case")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
        schema="phigate",
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "last_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.String(length=30), nullable=True),
        sa.Column("client_ip", sa.String(length=45), nullable=True),
        sa.Column("user_agent", sa.String(length=256), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["phigate.users.id"],
            name=op.f("fk_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
        schema="phigate",
    )
    op.create_index(
        op.f("ix_sessions_user_id"), "sessions", ["user_id"], unique=False, schema="phigate"
    )
    op.create_table(
        "refresh_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.UUID(), nullable=False),
        sa.Column(
            "issued_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["phigate.sessions.id"],
            name=op.f("fk_refresh_tokens_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_refresh_tokens")),
        schema="phigate",
    )
    op.create_index(
        op.f("ix_refresh_tokens_session_id"),
        "refresh_tokens",
        ["session_id"],
        unique=False,
        schema="phigate",
    )
    op.execute("RESET ROLE")

    op.execute(AUDIT_ROLE)
    op.execute("CREATE SCHEMA IF NOT EXISTS audit AUTHORIZATION phigate_audit_owner")
    op.execute("SET LOCAL ROLE phigate_audit_owner")
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column(
            "occurred_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("category", sa.String(length=20), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("actor_id", sa.String(length=100), nullable=True),
        sa.Column("actor_kind", sa.String(length=10), nullable=True),
        sa.Column("role", sa.String(length=30), nullable=True),
        sa.Column("session_id", sa.UUID(), nullable=True),
        sa.Column("purpose", sa.String(length=20), nullable=True),
        sa.Column("break_glass", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("operation_name", sa.String(length=200), nullable=True),
        sa.Column("document_hash", sa.String(length=64), nullable=True),
        sa.Column("field_path", sa.String(length=200), nullable=True),
        sa.Column("record_id", sa.String(length=100), nullable=True),
        sa.Column("client_ip", sa.String(length=45), nullable=True),
        sa.Column("user_agent", sa.String(length=256), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=60), nullable=True),
        sa.Column("subject_hash", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", "occurred_at", name=op.f("pk_events")),
        schema="audit",
        postgresql_partition_by="RANGE (occurred_at)",
    )
    # Catches every month until monthly partitions are managed by the audit work.
    op.execute("CREATE TABLE audit.events_default PARTITION OF audit.events DEFAULT")
    op.execute("RESET ROLE")
    for statement in GRANTS:
        op.execute(statement)


def downgrade() -> None:
    op.drop_table("events", schema="audit")
    op.execute("DROP SCHEMA audit")
    op.drop_index(
        op.f("ix_refresh_tokens_session_id"), table_name="refresh_tokens", schema="phigate"
    )
    op.drop_table("refresh_tokens", schema="phigate")
    op.drop_index(op.f("ix_sessions_user_id"), table_name="sessions", schema="phigate")
    op.drop_table("sessions", schema="phigate")
    op.drop_table("users", schema="phigate")
    op.drop_table("signing_keys", schema="phigate")
    op.drop_table("rate_limits", schema="phigate")
    op.drop_table("oauth_clients", schema="phigate")
