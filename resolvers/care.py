"""Care-team maintenance and the review of emergency (break-glass) access."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Row

from db import care_teams
from db.errors import ConstraintViolation
from db.models import User
from domain.errors import NotFound, Violations
from domain.patients import text_rule
from domain.security_events import Outcome, SecurityEvent
from resolvers.audit_trail import security_entry
from resolvers.context import RequestContext

users = User.__table__


async def add_member(
    ctx: RequestContext, *, patient_id: uuid.UUID, user_id: uuid.UUID, ends_at: datetime | None
) -> Row[Any]:
    violations = Violations()
    if ends_at is not None and ends_at <= ctx.now:
        violations.check("input.endsAt", "must be in the future")
    violations.raise_if_any()
    try:
        async with ctx.db.savepoint():
            row = await care_teams.add_member(
                ctx.db,
                patient_id=patient_id,
                user_id=user_id,
                added_by=ctx.actor_id or "",
                now=ctx.now,
                ends_at=ends_at,
            )
    except ConstraintViolation as violation:
        # Row-level security keeps patients out of an administrator's sight; the
        # foreign keys still know whether the ids exist.
        field = (
            "input.userId"
            if violation.constraint and "user" in violation.constraint
            else "input.patientId"
        )
        raise NotFound("patient" if field.endswith("patientId") else "user", field) from None
    _record_change(ctx, SecurityEvent.CARE_TEAM_MEMBER_ADDED, patient_id, user_id)
    return row


async def remove_member(ctx: RequestContext, *, patient_id: uuid.UUID, user_id: uuid.UUID) -> None:
    removed = await care_teams.remove_member(
        ctx.db,
        patient_id=patient_id,
        user_id=user_id,
        removed_by=ctx.actor_id or "",
        now=ctx.now,
    )
    if not removed:
        raise NotFound("care-team membership", "input")
    _record_change(ctx, SecurityEvent.CARE_TEAM_MEMBER_REMOVED, patient_id, user_id)


def _record_change(
    ctx: RequestContext, event: SecurityEvent, patient_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    """A grant or removal of PHI access is a security event in the same transaction:
    the patient as the record, the member in the reason (ids only)."""
    entry = security_entry(ctx, event, Outcome.ALLOWED, reason=f"USER:{user_id}")
    ctx.audit.append({**entry, "record_id": str(patient_id)})


async def episodes(ctx: RequestContext, *, reviewed: bool | None) -> Sequence[Row[Any]]:
    return await care_teams.list_episodes(ctx.db, reviewed=reviewed)


async def review_episode(ctx: RequestContext, episode_id: uuid.UUID, *, note: str) -> Row[Any]:
    violations = Violations()
    violations.check("input.note", text_rule(note, max_length=2000))
    violations.raise_if_any()
    row = await care_teams.review_episode(
        ctx.db, episode_id, reviewer=ctx.actor_id or "", note=note, now=ctx.now
    )
    if row is None:
        raise NotFound("break-glass episode", "input.id")
    return row


async def workforce(ctx: RequestContext) -> Sequence[Row[Any]]:
    return await ctx.db.rows(select(users).order_by(users.c.username))
