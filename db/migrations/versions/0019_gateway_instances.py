"""Running gateway processes and the key-encryption key versions each holds.

Each gateway process records itself every few seconds (graph/http/app.py). `phigate keys
rotate` re-wraps data keys under a new version only once every live gateway holds that
version: a gateway that cannot unwrap a re-wrapped key would answer DATA_INTEGRITY for
encrypted values and fail sign-ins until it was restarted.

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET LOCAL ROLE phigate_owner")
    op.execute(
        """
        CREATE TABLE phigate.gateway_instances (
            instance_id uuid PRIMARY KEY,
            host varchar(255) NOT NULL,
            pid integer NOT NULL,
            kek_versions integer[] NOT NULL,
            started_at timestamptz NOT NULL DEFAULT now(),
            seen_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("RESET ROLE")
    op.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON phigate.gateway_instances TO phigate_app")


def downgrade() -> None:
    op.execute("SET LOCAL ROLE phigate_owner")
    op.execute("DROP TABLE phigate.gateway_instances")
    op.execute("RESET ROLE")
