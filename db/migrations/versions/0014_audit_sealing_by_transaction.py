"""The sequencer seals audit entries by the transaction that wrote them.

Each entry now records its writing transaction's id (``txid``, set by the database,
never by the gateway). Every transaction below the oldest still running one
(``pg_snapshot_xmin``) has finished, so entries below that horizon can no longer
appear: the sequencer seals them in (txid, id) order and resumes after the last one it
sealed, reading only what is new. Before, each pass compared a ten-minute window of
entries against the chain to catch late commits, which under sustained load made
sealing the largest CPU cost in PostgreSQL. Entries written before this revision keep
no txid and are sealed (once) the old way.

Upgrading: the new index is built over the whole trail, and while it is built audit
writes (so requests) wait; on a large trail, apply this revision in a maintenance window.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET LOCAL ROLE phigate_audit_owner")
    # No default on the existing rows (no rewrite of the trail); new rows get theirs.
    op.add_column("events", sa.Column("txid", sa.BigInteger(), nullable=True), schema="audit")
    op.execute(
        "ALTER TABLE audit.events ALTER COLUMN txid SET DEFAULT pg_current_xact_id()::text::bigint"
    )
    op.create_index("ix_events_txid_id", "events", ["txid", "id"], schema="audit")
    op.add_column("chain", sa.Column("event_txid", sa.BigInteger(), nullable=True), schema="audit")
    # The sequencer's position: the last link sealed by transaction, found at once even
    # behind links an older gateway appended during a rolling upgrade.
    op.create_index(
        "ix_chain_seq_by_txid",
        "chain",
        ["seq"],
        schema="audit",
        postgresql_where=sa.text("event_txid IS NOT NULL"),
    )
    op.execute("RESET ROLE")


def downgrade() -> None:
    raise RuntimeError("the tamper-evident audit trail cannot be downgraded")
