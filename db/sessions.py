"""Server-side sessions and their single-use refresh tokens."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, text, update
from sqlalchemy.engine import Row

from db.models import RefreshToken, UserSession
from db.unit_of_work import RequestDatabase

sessions = UserSession.__table__
refresh_tokens = RefreshToken.__table__

# Activity is written at most this often: the idle clock is this precise.
TOUCH_INTERVAL = timedelta(seconds=15)

# Liveness of a session and its user in one round trip; refreshes last_seen_at when
# it is older than the touch interval. Returns the user's current role (the database,
# not the token, is the authority on roles).
_LIVE_SESSION = text(
    """
    WITH live AS (
        SELECT s.id, u.role
        FROM phigate.sessions s JOIN phigate.users u ON u.id = s.user_id
        WHERE s.id = :session_id AND s.user_id = :user_id
          AND s.revoked_at IS NULL AND s.expires_at > :now
          AND s.last_seen_at > :now - make_interval(secs => :idle_seconds)
          AND u.status = 'ACTIVE'
    ), touched AS (
        UPDATE phigate.sessions SET last_seen_at = :now
        WHERE id IN (SELECT id FROM live)
          AND last_seen_at < :now - make_interval(secs => :touch_seconds)
        RETURNING id
    )
    SELECT role FROM live
    """
)


async def live_session_role(
    db: RequestDatabase,
    *,
    session_id: uuid.UUID,
    user_id: uuid.UUID,
    now: datetime,
    idle: timedelta,
) -> str | None:
    return await db.scalar(
        _LIVE_SESSION,
        {
            "session_id": session_id,
            "user_id": user_id,
            "now": now,
            "idle_seconds": idle.total_seconds(),
            "touch_seconds": TOUCH_INTERVAL.total_seconds(),
        },
    )


async def create_session(db: RequestDatabase, values: Mapping[str, Any]) -> Row[Any]:
    row = await db.first(insert(sessions).values(**values).returning(sessions))
    assert row is not None
    return row


async def get_session(db: RequestDatabase, session_id: uuid.UUID) -> Row[Any] | None:
    return await db.first(select(sessions).where(sessions.c.id == session_id))


async def touch(db: RequestDatabase, session_id: uuid.UUID, *, now: datetime) -> None:
    await db.execute(update(sessions).where(sessions.c.id == session_id).values(last_seen_at=now))


async def revoke(db: RequestDatabase, session_id: uuid.UUID, *, now: datetime, reason: str) -> bool:
    row = await db.first(
        update(sessions)
        .where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
        .returning(sessions.c.id)
    )
    return row is not None


async def revoke_all_for_user(
    db: RequestDatabase, user_id: uuid.UUID, *, now: datetime, reason: str
) -> int:
    return await db.rowcount(
        update(sessions)
        .where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )


async def add_refresh_token(
    db: RequestDatabase, *, token_hash: str, session_id: uuid.UUID, now: datetime
) -> None:
    await db.execute(
        insert(refresh_tokens).values(token_hash=token_hash, session_id=session_id, issued_at=now)
    )


async def use_refresh_token(
    db: RequestDatabase, token_hash: str, *, now: datetime
) -> uuid.UUID | None:
    """Mark a refresh token used; its session id if it was unused, else None. Two
    requests racing with one token: exactly one gets the session."""
    row = await db.first(
        update(refresh_tokens)
        .where(refresh_tokens.c.token_hash == token_hash, refresh_tokens.c.used_at.is_(None))
        .values(used_at=now)
        .returning(refresh_tokens.c.session_id)
    )
    return row.session_id if row else None


async def find_refresh_token(db: RequestDatabase, token_hash: str) -> Row[Any] | None:
    return await db.first(select(refresh_tokens).where(refresh_tokens.c.token_hash == token_hash))
