"""A tamper-evident, append-only audit trail.

- audit.chain: the hash chain the sequencer appends (SHA-256(previous || entry)), in the
  order it seals events; audit.checkpoints: signed heads; audit.retention_cuts: months
  dropped after their retention period.
- Triggers refuse UPDATE, DELETE and TRUNCATE on all of them, for every role including
  the owner (a superuser can still disable triggers; the chain and signed checkpoints
  are what then tell).
- Monthly partitions: audit.ensure_partitions(n) creates this month's and the next n
  months' (SECURITY DEFINER, owned by phigate_audit_owner, so the gateway may call it
  without owning the schema). Rows already in the default partition move into monthly
  partitions here, once.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


REFUSE = """
CREATE FUNCTION audit.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only: % on %.% refused', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""

ENSURE_MONTH = """
CREATE FUNCTION audit.ensure_month(month date) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, audit AS $$
DECLARE
    first_day date := date_trunc('month', month)::date;
    name text := format('events_%s', to_char(first_day, 'YYYY_MM'));
BEGIN
    IF to_regclass(format('audit.%I', name)) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format(
        'CREATE TABLE audit.%I PARTITION OF audit.events FOR VALUES FROM (%L) TO (%L)',
        name,
        first_day::timestamp AT TIME ZONE 'UTC',
        (first_day + interval '1 month')::timestamp AT TIME ZONE 'UTC'
    );
    EXECUTE format(
        'CREATE TRIGGER no_truncate BEFORE TRUNCATE ON audit.%I FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change()',
        name
    );
    RETURN true;
END
$$
"""

ENSURE_PARTITIONS = """
CREATE FUNCTION audit.ensure_partitions(months_ahead integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, audit AS $$
DECLARE
    created integer := 0;
BEGIN
    FOR i IN 0..months_ahead LOOP
        IF audit.ensure_month(((now() AT TIME ZONE 'UTC')::date + make_interval(months => i))::date) THEN
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END
$$
"""

COLUMNS = (
    "id, occurred_at, category, action, outcome, actor_id, actor_kind, role, session_id, purpose,"
    " break_glass, operation_name, document_hash, field_path, record_id, client_ip, user_agent,"
    " request_id, reason, subject_hash, data_class"
)

MOVE_DEFAULT_ROWS = (
    "ALTER TABLE audit.events DETACH PARTITION audit.events_default",
    "ALTER TABLE audit.events_default RENAME TO events_before_0004",
    "SELECT audit.ensure_month(month::date) FROM generate_series("
    " date_trunc('month', coalesce((SELECT min(occurred_at) FROM audit.events_before_0004), now()) AT TIME ZONE 'UTC'),"
    " date_trunc('month', now() AT TIME ZONE 'UTC'), interval '1 month') AS month",
    "SELECT audit.ensure_partitions(3)",
    "CREATE TABLE audit.events_default PARTITION OF audit.events DEFAULT",
    f"INSERT INTO audit.events ({COLUMNS}) OVERRIDING SYSTEM VALUE SELECT {COLUMNS} FROM audit.events_before_0004",
    "DROP TABLE audit.events_before_0004",
)

APPEND_ONLY = (
    *(
        statement
        for table in ("events", "chain", "checkpoints", "retention_cuts")
        for statement in (
            f"CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON audit.{table}"
            " FOR EACH ROW EXECUTE FUNCTION audit.refuse_change()",
            f"CREATE TRIGGER no_truncate BEFORE TRUNCATE ON audit.{table}"
            " FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change()",
        )
    ),
    "CREATE TRIGGER no_truncate BEFORE TRUNCATE ON audit.events_default"
    " FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change()",
)

GRANTS = (
    "GRANT SELECT, INSERT ON audit.chain, audit.checkpoints TO phigate_app",
    "GRANT SELECT ON audit.retention_cuts TO phigate_app",
    "REVOKE ALL ON FUNCTION audit.ensure_month(date), audit.ensure_partitions(integer) FROM PUBLIC",
    "GRANT EXECUTE ON FUNCTION audit.ensure_partitions(integer) TO phigate_app",
)


def upgrade() -> None:
    op.execute("SET LOCAL ROLE phigate_audit_owner")
    op.create_table(
        "chain",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("event_occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.Column("chain_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "sealed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_chain")),
        sa.UniqueConstraint("event_id", name=op.f("uq_chain_event_id")),
        schema="audit",
    )
    op.create_table(
        "checkpoints",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.Column("signed", sa.String(length=4000), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkpoints")),
        schema="audit",
    )
    op.create_table(
        "retention_cuts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("partition", sa.String(length=63), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_chain_hash", sa.String(length=64), nullable=False),
        sa.Column("dropped_by", sa.String(length=100), nullable=False),
        sa.Column(
            "dropped_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retention_cuts")),
        schema="audit",
    )
    op.add_column(
        "events", sa.Column("data_class", sa.String(length=20), nullable=True), schema="audit"
    )
    op.execute(REFUSE)
    op.execute(ENSURE_MONTH)
    op.execute(ENSURE_PARTITIONS)
    for statement in MOVE_DEFAULT_ROWS:
        op.execute(statement)
    op.create_index(
        "ix_events_occurred_at", "events", ["occurred_at"], unique=False, schema="audit"
    )
    op.create_index(
        "ix_events_actor_id_occurred_at",
        "events",
        ["actor_id", "occurred_at"],
        unique=False,
        schema="audit",
    )
    op.create_index(
        "ix_events_record_id_occurred_at",
        "events",
        ["record_id", "occurred_at"],
        unique=False,
        schema="audit",
    )
    for statement in APPEND_ONLY:
        op.execute(statement)
    op.execute("RESET ROLE")
    for statement in GRANTS:
        op.execute(statement)


def downgrade() -> None:
    # Downgrading the audit trail is refused on purpose: it would mean deleting it.
    raise RuntimeError("the tamper-evident audit trail cannot be downgraded")
