"""The gateway's role may read which migration the database is at: `phigate serve`
refuses to start on a schema that is not current, and checks it as that role.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Unqualified on purpose: the table lives where Alembic put it (the search path).
    op.execute("GRANT SELECT ON alembic_version TO phigate_app")


def downgrade() -> None:
    op.execute("REVOKE SELECT ON alembic_version FROM phigate_app")
