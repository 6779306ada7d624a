"""Audit review for compliance officers and auditors; every use is itself recorded."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Row

from db import audit_queries as repo
from db.audit_queries import PHI_ACCESS, AnomalyThresholds, EventFilter
from domain.errors import FieldViolation, InvalidInput
from resolvers.context import RequestContext
from resolvers.inputs import page_size, parse_id

MAX_DAYS = 3650


def _days(days: int, field: str = "days") -> timedelta:
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput([FieldViolation(field, f"must be between 1 and {MAX_DAYS}")])
    return timedelta(days=days)


def encode_event_cursor(occurred_at: datetime, event_id: int, ordinal: int) -> str:
    return (
        base64.urlsafe_b64encode(f"a2|{occurred_at.isoformat()}|{event_id}|{ordinal}".encode())
        .decode()
        .rstrip("=")
    )


def _decode_event_cursor(cursor: str) -> tuple[datetime, int, int]:
    try:
        version, stamp, event_id, ordinal = (
            base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split("|")
        )
        if version != "a2":
            raise ValueError
        return datetime.fromisoformat(stamp), int(event_id), int(ordinal)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput(
            [FieldViolation("after", "must be a cursor returned by this API")]
        ) from None


@dataclass(frozen=True, slots=True)
class EventPage:
    rows: Sequence[Row[Any]]
    has_next_page: bool


async def events(
    ctx: RequestContext, where: EventFilter, *, first: int | None, after: str | None
) -> EventPage:
    if where.since and where.until and where.since >= where.until:
        raise InvalidInput([FieldViolation("filter.until", "must be after filter.since")])
    if where.patient_id is not None:
        parse_id(where.patient_id, "filter.patientId")
    limit = page_size(first, ctx.page_limits)
    before = _decode_event_cursor(after) if after else None
    rows = await repo.event_page(ctx.audit_reads, where, limit=limit, before=before)
    ctx.trail.note("AUDIT_QUERY", "Query.auditEvents", where.patient_id)
    return EventPage(rows[:limit], len(rows) > limit)


async def access_summary(ctx: RequestContext, user_id: str, days: int) -> Sequence[Row[Any]]:
    since = ctx.now - _days(days)
    ctx.trail.note("AUDIT_QUERY", "Query.phiAccessSummary", None)
    return await repo.access_summary(ctx.audit_reads, user_id, since=since)


async def disclosures(
    ctx: RequestContext, patient_id: str, since: datetime, until: datetime
) -> Sequence[Row[Any]]:
    parse_id(patient_id, "patientId")
    if since >= until:
        raise InvalidInput([FieldViolation("to", "must be after from")])
    ctx.trail.note("AUDIT_QUERY", "Query.accountingOfDisclosures", patient_id)
    return await repo.disclosures(ctx.audit_reads, patient_id, since=since, until=until)


@dataclass(frozen=True, slots=True)
class Statistics:
    days: int
    accesses_by_role: dict[str, int]
    accesses_by_purpose: dict[str, int]
    accesses_by_category: dict[str, int]
    denials_by_reason: dict[str, int]
    break_glass_accesses: int
    failed_logins: int
    lockouts: int


async def statistics(ctx: RequestContext, days: int) -> Statistics:
    since = ctx.now - _days(days)
    db = ctx.audit_reads
    ctx.trail.note("AUDIT_QUERY", "Query.complianceStatistics", None)
    security = await repo.counts_by(
        db, "action", since=since, where=repo.events.c.category == "SECURITY"
    )
    return Statistics(
        days=days,
        accesses_by_role=await repo.counts_by(db, "role", since=since, where=PHI_ACCESS),
        accesses_by_purpose=await repo.counts_by(db, "purpose", since=since, where=PHI_ACCESS),
        accesses_by_category=await repo.counts_by(db, "data_class", since=since, where=PHI_ACCESS),
        denials_by_reason=await repo.counts_by(
            db, "reason", since=since, where=repo.events.c.outcome == "DENIED"
        ),
        break_glass_accesses=(
            await repo.counts_by(db, "break_glass", since=since, where=PHI_ACCESS)
        ).get("True", 0),
        failed_logins=await repo.failed_logins(db, since=since),
        lockouts=security.get("ACCOUNT_LOCKED", 0),
    )


@dataclass(frozen=True, slots=True)
class Anomaly:
    kind: str
    actor_id: str | None
    window_start: datetime
    window_end: datetime | None
    count: int
    detail: str


async def anomalies(ctx: RequestContext, days: int, limits: AnomalyThresholds) -> list[Anomaly]:
    since = ctx.now - _days(days)
    ctx.trail.note("AUDIT_QUERY", "Query.auditAnomalies", None)
    found: list[Anomaly] = []
    for row in await repo.bulk_access(ctx.audit_reads, since=since, limits=limits):
        found.append(
            Anomaly(
                "BULK_ACCESS",
                row.actor_id,
                row.window_start,
                row.window_start + timedelta(minutes=limits.bulk_minutes),
                row.patients,
                f"more than {limits.bulk_patients} patients within {limits.bulk_minutes} minutes",
            )
        )
    for row in await repo.off_hours(ctx.audit_reads, since=since, limits=limits):
        start, end = limits.business_hours
        found.append(
            Anomaly(
                "OFF_HOURS_ACCESS",
                row.actor_id,
                row.window_start,
                row.window_end,
                row.patients,
                f"PHI accessed outside {start:02d}:00-{end:02d}:00 {limits.timezone}",
            )
        )
    for row in await repo.denial_bursts(ctx.audit_reads, since=since, limits=limits):
        found.append(
            Anomaly(
                "DENIAL_BURST",
                row.actor_id,
                row.window_start,
                row.window_start + timedelta(minutes=limits.denial_minutes),
                row.denials,
                f"at least {limits.denials} refused requests in {limits.denial_minutes} minutes",
            )
        )
    for row in await repo.unreviewed_break_glass(
        ctx.audit_reads, older_than=ctx.now - timedelta(hours=limits.unreviewed_hours)
    ):
        found.append(
            Anomaly(
                "BREAK_GLASS_UNREVIEWED",
                str(row.user_id),
                row.opened_at,
                row.expires_at,
                1,
                f"emergency access not reviewed within {limits.unreviewed_hours} hours",
            )
        )
    return found
