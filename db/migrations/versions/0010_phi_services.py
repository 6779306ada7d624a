"""A register of the services (ours or a vendor's) that create, receive, keep or send
PHI, so a query can name those without an active BAA covering them.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

CATEGORIES = "'IDENTITY', 'CONTACT', 'IDENTIFIER', 'CLINICAL', 'FINANCIAL'"


def upgrade() -> None:
    op.execute("SET LOCAL ROLE phigate_owner")
    op.create_table(
        "phi_services",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("vendor_name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("phi_categories", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            f"phi_categories <@ ARRAY[{CATEGORIES}]::text[]",
            name=op.f("ck_phi_services_phi_categories"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_phi_services")),
        sa.UniqueConstraint("vendor_name", "name", name=op.f("uq_phi_services_vendor_name_name")),
        schema="phigate",
    )
    op.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON phigate.phi_services TO phigate_app")
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute("SET LOCAL ROLE phigate_owner")
    op.drop_table("phi_services", schema="phigate")
    op.execute("RESET ROLE")
