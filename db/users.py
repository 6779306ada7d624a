"""User accounts. Counters and one-time-code steps change with single conditional
UPDATEs, so concurrent requests cannot both win."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, text, update
from sqlalchemy.engine import Row

from db.models import User
from db.unit_of_work import RequestDatabase

users = User.__table__


async def by_username(db: RequestDatabase, username: str) -> Row[Any] | None:
    return await db.first(select(users).where(users.c.username == username.lower()))


async def all_users(db: RequestDatabase) -> Sequence[Row[Any]]:
    return await db.rows(select(users).order_by(users.c.username))


async def by_id(db: RequestDatabase, user_id: uuid.UUID) -> Row[Any] | None:
    return await db.first(select(users).where(users.c.id == user_id))


async def insert_user(db: RequestDatabase, values: Mapping[str, Any]) -> Row[Any]:
    row = await db.first(insert(users).values(**values).returning(users))
    assert row is not None
    return row


_COUNT_FAILURE = text(
    """
    UPDATE phigate.users SET
        failed_logins = CASE WHEN locked_until <= :now THEN 1 ELSE failed_logins + 1 END,
        locked_until = CASE
            WHEN (CASE WHEN locked_until <= :now THEN 1 ELSE failed_logins + 1 END) >= :threshold
                THEN :lock_until
            WHEN locked_until <= :now THEN NULL
            ELSE locked_until
        END,
        updated_at = :now
    WHERE id = :user_id
    RETURNING failed_logins, locked_until
    """
)


async def count_failure(
    db: RequestDatabase, user_id: uuid.UUID, *, threshold: int, now: datetime, lock_until: datetime
) -> Row[Any]:
    """Add one consecutive failure in a single statement; the one that reaches the
    threshold locks the account. A lock that has run out starts the count afresh."""
    row = await db.first(
        _COUNT_FAILURE,
        {"user_id": user_id, "threshold": threshold, "now": now, "lock_until": lock_until},
    )
    assert row is not None
    return row


async def record_success(db: RequestDatabase, user_id: uuid.UUID, *, now: datetime) -> None:
    await db.execute(
        update(users)
        .where(users.c.id == user_id)
        .values(failed_logins=0, locked_until=None, last_login_at=now)
    )


async def consume_totp_step(db: RequestDatabase, user_id: uuid.UUID, step: int) -> bool:
    """Accept a code's time step once: true only for the one request that moves the
    account's last accepted step forward, however many race."""
    claimed = await db.first(
        update(users)
        .where(
            users.c.id == user_id,
            (users.c.totp_last_step.is_(None)) | (users.c.totp_last_step < step),
        )
        .values(totp_last_step=step)
        .returning(users.c.id)
    )
    return claimed is not None


async def set_values(
    db: RequestDatabase, username: str, values: Mapping[str, Any], *, now: datetime
) -> Row[Any] | None:
    return await db.first(
        update(users)
        .where(users.c.username == username.lower())
        .values(**values, updated_at=now)
        .returning(users)
    )
