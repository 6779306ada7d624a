"""Token-signing keys, shared by every gateway process through the database."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, text, update
from sqlalchemy.engine import Row

from db.models import SigningKey
from db.unit_of_work import RequestDatabase

keys = SigningKey.__table__
# Serialises key creation across processes (first start, rotation).
_KEY_LOCK = 0x50484947  # "PHIG"


async def all_keys(db: RequestDatabase) -> Sequence[Row[Any]]:
    return await db.rows(select(keys).order_by(keys.c.created_at, keys.c.kid))


async def lock_for_creation(db: RequestDatabase) -> None:
    await db.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _KEY_LOCK})


async def insert_key(db: RequestDatabase, values: Mapping[str, Any]) -> None:
    await db.execute(insert(keys).values(**values))


async def retire_all_but(db: RequestDatabase, kid: str, *, now: datetime) -> int:
    return await db.rowcount(
        update(keys).where(keys.c.kid != kid, keys.c.retired_at.is_(None)).values(retired_at=now)
    )
