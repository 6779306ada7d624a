"""Breach incidents record a law-enforcement delay (§164.412), which pushes every
notification deadline back by its period.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET LOCAL ROLE phigate_owner")
    op.add_column(
        "breach_incidents",
        sa.Column("law_enforcement_delay_days", sa.Integer(), nullable=True),
        schema="phigate",
    )
    op.create_check_constraint(
        "law_enforcement_delay_days_range",
        "breach_incidents",
        "law_enforcement_delay_days BETWEEN 1 AND 365",
        schema="phigate",
    )
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute("SET LOCAL ROLE phigate_owner")
    op.drop_constraint(
        "ck_breach_incidents_law_enforcement_delay_days_range",
        "breach_incidents",
        schema="phigate",
    )
    op.drop_column("breach_incidents", "law_enforcement_delay_days", schema="phigate")
    op.execute("RESET ROLE")
