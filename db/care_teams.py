"""Care relationships and emergency (break-glass) episodes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Row

from db.models import BreakGlassEpisode, CareTeamChange, CareTeamMember
from db.unit_of_work import RequestDatabase

members = CareTeamMember.__table__
changes = CareTeamChange.__table__
episodes = BreakGlassEpisode.__table__


async def add_member(
    db: RequestDatabase,
    *,
    patient_id: uuid.UUID,
    user_id: uuid.UUID,
    added_by: str,
    now: datetime,
    ends_at: datetime | None,
) -> Row[Any]:
    statement = (
        insert(members)
        .values(
            patient_id=patient_id, user_id=user_id, added_by=added_by, added_at=now, ends_at=ends_at
        )
        .on_conflict_do_update(
            index_elements=[members.c.patient_id, members.c.user_id],
            set_={"ends_at": ends_at, "added_by": added_by, "added_at": now},
        )
        .returning(members)
    )
    row = await db.first(statement)
    assert row is not None
    await _record(db, "ADDED", patient_id, user_id, by=added_by, now=now, ends_at=ends_at)
    return row


async def remove_member(
    db: RequestDatabase,
    *,
    patient_id: uuid.UUID,
    user_id: uuid.UUID,
    removed_by: str,
    now: datetime,
) -> bool:
    """Ends a membership; the history keeps that it existed and who ended it."""
    removed = await db.rowcount(
        delete(members).where(members.c.patient_id == patient_id, members.c.user_id == user_id)
    )
    if removed:
        await _record(db, "REMOVED", patient_id, user_id, by=removed_by, now=now)
    return removed > 0


async def _record(
    db: RequestDatabase,
    change: str,
    patient_id: uuid.UUID,
    user_id: uuid.UUID,
    *,
    by: str,
    now: datetime,
    ends_at: datetime | None = None,
) -> None:
    """A membership granted or ended, kept in care_team_changes (append-only)."""
    await db.execute(
        insert(changes).values(
            patient_id=patient_id,
            user_id=user_id,
            change=change,
            ends_at=ends_at,
            changed_by=by,
            changed_at=now,
        )
    )


async def members_of(db: RequestDatabase, patient_id: uuid.UUID) -> Sequence[Row[Any]]:
    return await db.rows(
        select(members)
        .where(
            members.c.patient_id == patient_id,
            or_(members.c.ends_at.is_(None), members.c.ends_at > func.now()),
        )
        .order_by(members.c.added_at)
    )


async def active_episode(
    db: RequestDatabase, *, user_id: uuid.UUID, patient_id: uuid.UUID, now: datetime
) -> Row[Any] | None:
    return await db.first(
        select(episodes).where(
            episodes.c.user_id == user_id,
            episodes.c.patient_id == patient_id,
            episodes.c.expires_at > now,
        )
    )


async def open_episode(
    db: RequestDatabase,
    *,
    user_id: uuid.UUID,
    patient_id: uuid.UUID,
    reason: str,
    now: datetime,
    expires_at: datetime,
) -> Row[Any]:
    row = await db.first(
        insert(episodes)
        .values(
            user_id=user_id,
            patient_id=patient_id,
            reason=reason,
            opened_at=now,
            expires_at=expires_at,
        )
        .returning(episodes)
    )
    assert row is not None
    return row


async def list_episodes(db: RequestDatabase, *, reviewed: bool | None) -> Sequence[Row[Any]]:
    query = select(episodes).order_by(episodes.c.opened_at.desc(), episodes.c.id)
    if reviewed is not None:
        query = query.where(
            episodes.c.reviewed_at.isnot(None) if reviewed else episodes.c.reviewed_at.is_(None)
        )
    return await db.rows(query)


async def review_episode(
    db: RequestDatabase, episode_id: uuid.UUID, *, reviewer: str, note: str, now: datetime
) -> Row[Any] | None:
    return await db.first(
        update(episodes)
        .where(episodes.c.id == episode_id)
        .values(reviewed_at=now, reviewed_by=reviewer, review_note=note)
        .returning(episodes)
    )
