"""An audit entry's writing-transaction id is always the database's, never a writer's.

Revision 0014 gave ``audit.events.txid`` a default; a writer could still name the
column and put any value there, and an entry filed below the sequencer's position (or
with no txid at all) would never be sealed. A trigger now sets it on every insert.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET LOCAL ROLE phigate_audit_owner")
    op.execute(
        """
        CREATE FUNCTION audit.stamp_txid() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.txid := pg_current_xact_id()::text::bigint;
            RETURN NEW;
        END
        $$
        """
    )
    # On the partitioned table: PostgreSQL clones it onto every partition, present and future.
    op.execute(
        "CREATE TRIGGER stamp_txid BEFORE INSERT ON audit.events"
        " FOR EACH ROW EXECUTE FUNCTION audit.stamp_txid()"
    )
    op.execute("RESET ROLE")


def downgrade() -> None:
    raise RuntimeError("the tamper-evident audit trail cannot be downgraded")
