"""Audit entries store the records a field was read in as a list.

One row per (request, field, action) with record_ids uuid[] instead of one row per
(request, record, field): auditing a 100-patient list is 4 rows, not 400, which keeps
the audit trail's cost near 10% of a request. Readers expand rows into one logical
entry per (record, field). Entries written before this keep record_id (their chain
digests do not change: record_ids enters a digest only when it is not empty). uuid[]
rather than text[]: 16 bytes an id, so a 100-record row stays under the TOAST threshold.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET LOCAL ROLE phigate_audit_owner")
    op.add_column(
        "events",
        sa.Column(
            "record_ids",
            postgresql.ARRAY(postgresql.UUID(as_uuid=True)),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        schema="audit",
    )
    op.drop_index("ix_events_occurred_at", table_name="events", schema="audit")
    op.drop_index("ix_events_record_id_occurred_at", table_name="events", schema="audit")
    op.create_index(
        "ix_events_occurred_at_brin",
        "events",
        ["occurred_at"],
        schema="audit",
        postgresql_using="brin",
    )
    op.create_index(
        "ix_events_record_id_occurred_at",
        "events",
        ["record_id", "occurred_at"],
        schema="audit",
        postgresql_where=sa.text("record_id IS NOT NULL"),
    )
    op.create_index(
        "ix_events_record_ids", "events", ["record_ids"], schema="audit", postgresql_using="gin"
    )
    op.execute("RESET ROLE")


def downgrade() -> None:
    raise RuntimeError("the tamper-evident audit trail cannot be downgraded")
