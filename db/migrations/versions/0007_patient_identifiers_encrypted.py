"""SSN and insurance member id are stored encrypted (AES-256-GCM envelope, AAD bound to
table, column and row), SSN with a keyed blind index for exact-match lookup.

Existing plaintext values are encrypted in place, which needs the keys: `phigate
migrate` passes them. A database holding plaintext identifiers cannot be migrated
without them (the migration stops and says so; nothing is lost).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Mirrors db.patients: the purpose string of the SSN blind index.
SSN_INDEX = "patients.ssn"


def upgrade() -> None:
    op.execute("SET LOCAL ROLE phigate_owner")
    for column in ("ssn_sealed", "ssn_index", "insurance_member_id_sealed"):
        op.add_column(
            "patients", sa.Column(column, sa.LargeBinary(), nullable=True), schema="phigate"
        )
    op.create_index("ix_patients_ssn_index", "patients", ["ssn_index"], schema="phigate")
    bind = op.get_bind()
    plaintext = bind.execute(
        sa.text(
            "SELECT id, ssn, insurance_member_id FROM phigate.patients"
            " WHERE ssn IS NOT NULL OR insurance_member_id IS NOT NULL"
        )
    ).all()
    if plaintext:
        cipher = op.get_context().config.attributes.get("cipher")
        if cipher is None:
            raise RuntimeError(
                "patients hold plaintext identifiers to encrypt: run `phigate migrate`"
                " with the keys configured (PHIGATE_MASTER_KEY, PHIGATE_BLIND_INDEX_KEY)"
            )
        for row in plaintext:
            bind.execute(
                sa.text(
                    "UPDATE phigate.patients SET ssn_sealed = :ssn, ssn_index = :ssn_index,"
                    " insurance_member_id_sealed = :member WHERE id = :id"
                ),
                {
                    "id": row.id,
                    "ssn": cipher.seal("patients", "ssn", row.id, row.ssn),
                    "ssn_index": cipher.index(SSN_INDEX, row.ssn) if row.ssn else None,
                    "member": cipher.seal(
                        "patients", "insurance_member_id", row.id, row.insurance_member_id
                    ),
                },
            )
    op.drop_column("patients", "ssn", schema="phigate")
    op.drop_column("patients", "insurance_member_id", schema="phigate")
    op.execute("RESET ROLE")


def downgrade() -> None:
    raise RuntimeError("identifiers cannot be decrypted back into plaintext columns")
