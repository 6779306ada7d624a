"""An audit entry's writing-transaction id: the column's default, which the gateway may
not name, instead of a trigger on every row.

Revision 0015 set ``audit.events.txid`` with a PL/pgSQL trigger, so that a writer could
not choose it. Column privileges say the same for nothing per row: the application role
may insert every column but ``id`` (an identity) and ``txid``, which therefore always
takes its default, the writing transaction's id. Measured on the served read path, the
trigger was a PL/pgSQL call per entry inside every audited request.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

WRITABLE = (
    "occurred_at", "category", "action", "outcome", "actor_id", "actor_kind", "role",
    "session_id", "purpose", "break_glass", "operation_name", "document_hash", "field_path",
    "record_id", "record_ids", "client_ip", "user_agent", "request_id", "reason",
    "subject_hash", "data_class", "break_glass_episode_id",
)  # fmt: skip


def upgrade() -> None:
    op.execute("SET LOCAL ROLE phigate_audit_owner")
    op.execute("DROP TRIGGER stamp_txid ON audit.events")
    op.execute("DROP FUNCTION audit.stamp_txid()")
    op.execute("REVOKE INSERT ON audit.events FROM phigate_app")
    op.execute(f"GRANT INSERT ({', '.join(WRITABLE)}) ON audit.events TO phigate_app")
    op.execute("RESET ROLE")


def downgrade() -> None:
    raise RuntimeError("the tamper-evident audit trail cannot be downgraded")
