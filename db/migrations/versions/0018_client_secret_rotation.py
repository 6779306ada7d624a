"""A service client's secret can be rotated with an overlap: the previous secret keeps
working until a set time, so the service can be redeployed with the new one first.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET LOCAL ROLE phigate_owner")
    op.execute("ALTER TABLE phigate.oauth_clients ADD COLUMN previous_secret_hash text")
    op.execute("ALTER TABLE phigate.oauth_clients ADD COLUMN previous_secret_until timestamptz")
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute("SET LOCAL ROLE phigate_owner")
    op.execute("ALTER TABLE phigate.oauth_clients DROP COLUMN previous_secret_until")
    op.execute("ALTER TABLE phigate.oauth_clients DROP COLUMN previous_secret_hash")
    op.execute("RESET ROLE")
