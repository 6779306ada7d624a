"""Retention runs on a schedule, inside the gateway, without the owner's credentials.

Until now only `phigate retention run`, as the schema owner, deleted records past
retention (checklist C12 asks for a scheduled job). The gateway connects as
``phigate_app``, which row-level security gives no rows without a caller, and which
must not be able to delete records at will. So:

* ``phigate.retention_policy`` holds the retention period (days) the database applies;
  only the schema owner writes it (`phigate retention run` sets it from
  PHIGATE_RETENTION_DAYS or --days).
* ``phigate.retention_expired(class, last_changed, born, days, today)`` is the rule of
  domain/retention.py written in SQL (a test keeps the two in agreement).
* ``phigate.retention_sweep(batch, configured_days)``, SECURITY DEFINER, deletes up to
  ``batch`` unheld records past the longer of that period and the gateway's configured
  one, and returns their ids, under a transaction-level advisory lock so one gateway
  sweeps at a time. The caller writes the audit entry in the same transaction. The
  application role chooses no record and can only lengthen the period: a gateway
  configured to keep records longer than the database's period is obeyed, never a
  shorter one.

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

# pg_try_advisory_xact_lock key: 'phigate retention' as two int4 halves of its hash.
LOCK = "hashtext('phigate.retention_sweep')"

FUNCTIONS = (
    """
    CREATE FUNCTION phigate.retention_expired(
        retention_class text, last_changed date, born date, days integer, today date
    ) RETURNS boolean
    LANGUAGE sql IMMUTABLE SET search_path = pg_catalog AS $$
        SELECT today >= CASE
            WHEN retention_class = 'MINOR' THEN greatest(
                last_changed + days,
                (born + interval '18 years')::date + days
            )
            ELSE last_changed + days
        END
    $$
    """,
    f"""
    CREATE FUNCTION phigate.retention_sweep(batch integer, configured_days integer)
    RETURNS SETOF uuid
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
    DECLARE
        period integer;
    BEGIN
        IF batch IS NULL OR batch < 1 OR batch > 10000 THEN
            RAISE EXCEPTION 'batch must be 1 to 10000';
        END IF;
        IF NOT pg_try_advisory_xact_lock({LOCK}) THEN
            RETURN;  -- another gateway is sweeping
        END IF;
        SELECT greatest(p.days, coalesce(configured_days, 0)) INTO STRICT period
        FROM phigate.retention_policy p;
        RETURN QUERY
        WITH expired AS (
            SELECT p.id FROM phigate.patients p
            WHERE NOT p.legal_hold
              AND p.updated_at < now() - make_interval(days => period)
              AND phigate.retention_expired(
                    p.retention_class, (p.updated_at AT TIME ZONE 'UTC')::date,
                    p.date_of_birth, period, (now() AT TIME ZONE 'UTC')::date)
            ORDER BY p.updated_at, p.id
            LIMIT batch
            FOR UPDATE SKIP LOCKED
        )
        DELETE FROM phigate.patients p USING expired
        WHERE p.id = expired.id AND NOT p.legal_hold
        RETURNING p.id;
    END
    $$
    """,
    "REVOKE ALL ON FUNCTION phigate.retention_sweep(integer, integer) FROM PUBLIC",
)


def upgrade() -> None:
    op.execute("SET LOCAL ROLE phigate_owner")
    op.create_table(
        "retention_policy",
        sa.Column("id", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.CheckConstraint("id", name=op.f("ck_retention_policy_single_row")),
        sa.CheckConstraint("days >= 365", name=op.f("ck_retention_policy_days")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retention_policy")),
        schema="phigate",
    )
    op.execute("INSERT INTO phigate.retention_policy (days) VALUES (2555)")
    for statement in FUNCTIONS:
        op.execute(statement)
    op.execute("RESET ROLE")
    op.execute("REVOKE ALL ON phigate.retention_policy FROM phigate_app")
    op.execute("GRANT SELECT ON phigate.retention_policy TO phigate_app")
    op.execute("GRANT EXECUTE ON FUNCTION phigate.retention_sweep(integer, integer) TO phigate_app")


def downgrade() -> None:
    op.execute("SET LOCAL ROLE phigate_owner")
    op.execute("DROP FUNCTION phigate.retention_sweep(integer, integer)")
    op.execute("DROP FUNCTION phigate.retention_expired(text, date, date, integer, date)")
    op.drop_table("retention_policy", schema="phigate")
    op.execute("RESET ROLE")
