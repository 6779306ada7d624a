"""Reading the audit trail: filtered pages, per-user and per-patient summaries,
statistics and anomalies. Aggregations happen in PostgreSQL, over indexed columns."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Text, and_, case, func, select, text, true, tuple_
from sqlalchemy import cast as sa_cast
from sqlalchemy.dialects.postgresql import ARRAY, array
from sqlalchemy.engine import Row

from db.audit import mentions
from db.models import AuditEvent, BreakGlassEpisode
from db.unit_of_work import RequestDatabase

events = AuditEvent.__table__
episodes = BreakGlassEpisode.__table__
PHI_ACTIONS = ("READ", "WRITE", "DELETE")

# One logical entry per (record, field): a row's record_ids expanded (older entries,
# and those about no record, hold record_id instead).
entry_record = (
    func.unnest(
        case(
            (
                func.cardinality(events.c.record_ids) > 0,
                sa_cast(events.c.record_ids, ARRAY(Text)),
            ),
            else_=array([events.c.record_id]),
        )
    )
    .table_valued("record", with_ordinality="ordinal")
    .render_derived(name="entry")
    .lateral("entry")
)
ENTRIES = events.join(entry_record, true())
RECORD = entry_record.c.record
# How many logical entries a row holds.
WEIGHT = func.greatest(func.cardinality(events.c.record_ids), 1)


@dataclass(frozen=True, slots=True)
class EventFilter:
    actor_id: str | None = None
    patient_id: str | None = None
    data_class: str | None = None
    purpose: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def event_page(
    db: RequestDatabase,
    where: EventFilter,
    *,
    limit: int,
    before: tuple[datetime, int, int] | None,
) -> Sequence[Row[Any]]:
    """Logical entries (one per record and field), most recent first; ``limit + 1``
    rows so the caller knows whether more follow. Keyset: (occurred_at, id, ordinal)."""
    ordinal = entry_record.c.ordinal
    query = (
        select(events, RECORD.label("entry_record"), ordinal.label("entry_ordinal"))
        .select_from(ENTRIES)
        .order_by(events.c.occurred_at.desc(), events.c.id.desc(), ordinal.desc())
        .limit(limit + 1)
    )
    for column, value in (
        (events.c.actor_id, where.actor_id),
        (events.c.data_class, where.data_class),
        (events.c.purpose, where.purpose),
        (events.c.outcome, where.outcome),
    ):
        if value is not None:
            query = query.where(column == value)
    if where.patient_id is not None:
        query = query.where(
            mentions(where.patient_id, since=where.since, until=where.until),
            where.patient_id == RECORD,
        )
    if where.since is not None:
        query = query.where(events.c.occurred_at >= where.since)
    if where.until is not None:
        query = query.where(events.c.occurred_at < where.until)
    if before is not None:
        query = query.where(tuple_(events.c.occurred_at, events.c.id, ordinal) < tuple_(*before))
    return await db.rows(query)


async def access_summary(
    db: RequestDatabase, actor_id: str, *, since: datetime
) -> Sequence[Row[Any]]:
    """Which patients, and which categories of their PHI, one user touched."""
    return await db.rows(
        select(
            RECORD.label("record_id"),
            func.array_agg(func.distinct(events.c.data_class)).label("categories"),
            func.count().label("accesses"),
            func.max(events.c.occurred_at).label("last_access"),
        )
        .select_from(ENTRIES)
        .where(
            events.c.actor_id == actor_id,
            events.c.occurred_at >= since,
            events.c.category == "ACCESS",
            events.c.action.in_(PHI_ACTIONS),
            events.c.outcome == "ALLOWED",
            RECORD.isnot(None),
        )
        .group_by(RECORD)
        .order_by(func.max(events.c.occurred_at).desc())
    )


async def episode_accesses(
    db: RequestDatabase, episode_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """How many requests read or wrote PHI through each break-glass episode."""
    rows = await db.rows(
        select(events.c.break_glass_episode_id, func.count(func.distinct(events.c.request_id)))
        .where(
            events.c.break_glass_episode_id.in_(episode_ids),
            events.c.category == "ACCESS",
            events.c.outcome == "ALLOWED",
        )
        .group_by(events.c.break_glass_episode_id)
    )
    return {episode: count for episode, count in rows}


async def disclosures(
    db: RequestDatabase, patient_id: str, *, since: datetime, until: datetime
) -> Sequence[Row[Any]]:
    """An accounting of disclosures (§164.528): one line per request that touched this
    patient's PHI: when, who, in what role, why, and which fields."""
    return await db.rows(
        select(
            func.min(events.c.occurred_at).label("occurred_at"),
            events.c.request_id,
            events.c.actor_id,
            events.c.actor_kind,
            events.c.role,
            events.c.purpose,
            func.bool_or(events.c.break_glass).label("break_glass"),
            func.max(sa_cast(events.c.break_glass_episode_id, Text)).label(
                "break_glass_episode_id"
            ),
            events.c.outcome,
            func.array_agg(func.distinct(events.c.action)).label("actions"),
            func.array_agg(func.distinct(events.c.field_path)).label("fields"),
        )
        .where(
            mentions(patient_id, since=since, until=until),
            events.c.occurred_at >= since,
            events.c.occurred_at < until,
            events.c.category == "ACCESS",
            events.c.action.in_(PHI_ACTIONS),
        )
        .group_by(
            events.c.request_id,
            events.c.actor_id,
            events.c.actor_kind,
            events.c.role,
            events.c.purpose,
            events.c.outcome,
        )
        .order_by(func.min(events.c.occurred_at))
    )


async def counts_by(
    db: RequestDatabase,
    column: str,
    *,
    since: datetime,
    until: datetime | None = None,
    where: Any = None,
) -> dict[str, int]:
    target = events.c[column]
    query = select(target, func.sum(WEIGHT)).where(events.c.occurred_at >= since).group_by(target)
    if until is not None:
        query = query.where(events.c.occurred_at < until)
    if where is not None:
        query = query.where(where)
    return {str(key): int(count) for key, count in (await db.rows(query)) if key is not None}


PHI_ACCESS = and_(
    events.c.category == "ACCESS", events.c.action.in_(PHI_ACTIONS), events.c.outcome == "ALLOWED"
)


@dataclass(frozen=True, slots=True)
class AnomalyThresholds:
    bulk_patients: int = 50
    bulk_minutes: int = 10
    denials: int = 10
    denial_minutes: int = 10
    business_hours: tuple[int, int] = (7, 19)
    timezone: str = "UTC"
    unreviewed_hours: int = 24


def _window(minutes: int) -> Any:
    """The fixed window an entry falls in (windows of this many minutes)."""
    return func.date_bin(
        timedelta(minutes=minutes), events.c.occurred_at, text("'2000-01-01'::timestamptz")
    )


async def bulk_access(
    db: RequestDatabase, *, since: datetime, limits: AnomalyThresholds
) -> Sequence[Row[Any]]:
    bucket = _window(limits.bulk_minutes)
    return await db.rows(
        select(
            events.c.actor_id,
            bucket.label("window_start"),
            func.count(func.distinct(RECORD)).label("patients"),
        )
        .select_from(ENTRIES)
        .where(
            events.c.occurred_at >= since,
            events.c.category == "ACCESS",
            events.c.outcome == "ALLOWED",
            RECORD.isnot(None),
        )
        .group_by(events.c.actor_id, bucket)
        .having(func.count(func.distinct(RECORD)) > limits.bulk_patients)
        .order_by(bucket)
    )


async def denial_bursts(
    db: RequestDatabase, *, since: datetime, limits: AnomalyThresholds
) -> Sequence[Row[Any]]:
    bucket = _window(limits.denial_minutes)
    return await db.rows(
        select(
            events.c.actor_id,
            bucket.label("window_start"),
            func.count(func.distinct(events.c.request_id)).label("denials"),
        )
        .where(
            events.c.occurred_at >= since,
            events.c.outcome == "DENIED",
            events.c.actor_id.isnot(None),
        )
        .group_by(events.c.actor_id, bucket)
        .having(func.count(func.distinct(events.c.request_id)) >= limits.denials)
        .order_by(bucket)
    )


async def off_hours(
    db: RequestDatabase, *, since: datetime, limits: AnomalyThresholds
) -> Sequence[Row[Any]]:
    hour = func.extract("hour", func.timezone(limits.timezone, events.c.occurred_at))
    start, end = limits.business_hours
    return await db.rows(
        select(
            events.c.actor_id,
            func.min(events.c.occurred_at).label("window_start"),
            func.max(events.c.occurred_at).label("window_end"),
            func.count(func.distinct(RECORD)).label("patients"),
        )
        .select_from(ENTRIES)
        .where(
            events.c.occurred_at >= since,
            events.c.category == "ACCESS",
            events.c.outcome == "ALLOWED",
            RECORD.isnot(None),
            (hour < start) | (hour >= end),
        )
        .group_by(events.c.actor_id)
    )


async def unreviewed_break_glass(
    db: RequestDatabase, *, older_than: datetime
) -> Sequence[Row[Any]]:
    return await db.rows(
        select(episodes)
        .where(episodes.c.reviewed_at.is_(None), episodes.c.opened_at < older_than)
        .order_by(episodes.c.opened_at)
    )


async def failed_logins(db: RequestDatabase, *, since: datetime) -> int:
    return int(
        await db.scalar(
            select(func.count()).where(
                events.c.occurred_at >= since,
                events.c.category == "SECURITY",
                events.c.action.in_(("LOGIN_FAILED", "MFA_FAILED", "LOGIN_WHILE_LOCKED")),
            )
        )
        or 0
    )
