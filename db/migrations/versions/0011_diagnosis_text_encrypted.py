"""A diagnosis's free-text description is stored encrypted (AAD bound to table, column
and row), like the identifiers: free text is where PHI hides. Existing text is
encrypted in place, which needs the keys (as for 0007).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET LOCAL ROLE phigate_owner")
    op.add_column(
        "diagnoses",
        sa.Column("description_sealed", sa.LargeBinary(), nullable=True),
        schema="phigate",
    )
    bind = op.get_bind()
    plaintext = bind.execute(
        sa.text("SELECT id, description FROM phigate.diagnoses WHERE description IS NOT NULL")
    ).all()
    if plaintext:
        cipher = op.get_context().config.attributes.get("cipher")
        if cipher is None:
            raise RuntimeError(
                "diagnoses hold plaintext descriptions to encrypt: run `phigate migrate`"
                " with the keys configured (PHIGATE_MASTER_KEY, PHIGATE_BLIND_INDEX_KEY)"
            )
        for row in plaintext:
            bind.execute(
                sa.text("UPDATE phigate.diagnoses SET description_sealed = :sealed WHERE id = :id"),
                {
                    "id": row.id,
                    "sealed": cipher.seal("diagnoses", "description", row.id, row.description),
                },
            )
    op.drop_column("diagnoses", "description", schema="phigate")
    op.execute("RESET ROLE")


def downgrade() -> None:
    raise RuntimeError("descriptions cannot be decrypted back into a plaintext column")
