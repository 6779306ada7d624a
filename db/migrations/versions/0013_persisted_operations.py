"""Persisted operations: GraphQL documents registered ahead of time (or, outside strict
mode, by automatic persisted queries), addressed by the SHA-256 of their text.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET LOCAL ROLE phigate_owner")
    op.create_table(
        "persisted_operations",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("registered_by", sa.String(length=100), nullable=True),
        sa.Column(
            "registered_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "source IN ('REGISTERED', 'AUTOMATIC')", name=op.f("ck_persisted_operations_source")
        ),
        sa.CheckConstraint(
            "sha256 ~ '^[0-9a-f]{64}$'", name=op.f("ck_persisted_operations_sha256_hex")
        ),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_persisted_operations")),
        schema="phigate",
    )
    op.execute("GRANT SELECT, INSERT ON phigate.persisted_operations TO phigate_app")
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute("SET LOCAL ROLE phigate_owner")
    op.drop_table("persisted_operations", schema="phigate")
    op.execute("RESET ROLE")
