"""Re-wrapping data keys under the current key-encryption key, online and in batches.

Each batch is its own short transaction that locks only its rows; a row changed
meanwhile is left for the next pass (the update matches the old ciphertext). Values are
never decrypted: only each 32-byte data key is unwrapped and wrapped again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Column, Table, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from db.crypto import Envelope, associated_data
from db.models import Diagnosis, Patient, SigningKey, User
from db.visibility import require_owner


@dataclass(frozen=True)
class SealedColumn:
    table: Table
    column: str
    key: str
    aad_table: str
    aad_column: str

    @property
    def name(self) -> str:
        return f"{self.table.name}.{self.column}"


SEALED_COLUMNS = (
    SealedColumn(Patient.__table__, "ssn_sealed", "id", "patients", "ssn"),
    SealedColumn(
        Patient.__table__, "insurance_member_id_sealed", "id", "patients", "insurance_member_id"
    ),
    SealedColumn(Diagnosis.__table__, "description_sealed", "id", "diagnoses", "description"),
    SealedColumn(User.__table__, "totp_secret_ciphertext", "id", "users", "totp_secret"),
    SealedColumn(
        SigningKey.__table__, "private_key_ciphertext", "kid", "signing_keys", "private_key"
    ),
)


def _kek_version(column: Column) -> object:
    """Bytes 1-2 of the envelope header (big-endian): the KEK version."""
    return func.get_byte(column, 1) * 256 + func.get_byte(column, 2)


async def stale_counts(engine: AsyncEngine, current: int) -> dict[str, int]:
    """How many values per column are still wrapped under an older KEK version."""
    counts: dict[str, int] = {}
    async with engine.begin() as connection:
        await require_owner(connection)
        for spec in SEALED_COLUMNS:
            column = spec.table.c[spec.column]
            counts[spec.name] = int(
                await connection.scalar(
                    select(func.count()).where(column.isnot(None), _kek_version(column) != current)
                )
                or 0
            )
    return counts


async def rewrap_all(
    engine: AsyncEngine,
    envelope: Envelope,
    *,
    batch: int = 500,
    progress: Callable[[str, int], None] = lambda name, done: None,
) -> dict[str, int]:
    """Re-wrap every value not under the current KEK version; returns how many per column."""
    current = envelope.provider.current_version
    done: dict[str, int] = {}
    for spec in SEALED_COLUMNS:
        column, key = spec.table.c[spec.column], spec.table.c[spec.key]
        done[spec.name] = 0
        while True:
            async with engine.begin() as connection:
                await require_owner(connection)
                rows = (
                    await connection.execute(
                        select(key, column)
                        .where(column.isnot(None), _kek_version(column) != current)
                        .order_by(key)
                        .limit(batch)
                        .with_for_update()
                    )
                ).all()
                for row_key, blob in rows:
                    aad = associated_data(spec.aad_table, spec.aad_column, row_key)
                    await connection.execute(
                        update(spec.table)
                        .where(key == row_key, column == blob)
                        .values({spec.column: envelope.rewrap(bytes(blob), aad=aad)})
                    )
            if not rows:
                break
            done[spec.name] += len(rows)
            progress(spec.name, done[spec.name])
    return done
