"""Breach incident queries."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row

from db.models import (
    BreachAffectedPatient,
    BreachIncident,
    BreachJurisdiction,
    BreachNotification,
    Patient,
)
from db.unit_of_work import RequestDatabase
from db.visibility import PatientScope

breaches = BreachIncident.__table__
affected = BreachAffectedPatient.__table__
jurisdictions = BreachJurisdiction.__table__
notifications = BreachNotification.__table__
patients = Patient.__table__


async def get_breach(db: RequestDatabase, breach_id: uuid.UUID) -> Row[Any] | None:
    return await db.first(select(breaches).where(breaches.c.id == breach_id))


async def list_breaches(db: RequestDatabase, *, status: str | None = None) -> Sequence[Row[Any]]:
    query = select(breaches).order_by(breaches.c.discovered_at.desc(), breaches.c.id)
    if status is not None:
        query = query.where(breaches.c.status == status)
    return await db.rows(query)


async def insert_breach(db: RequestDatabase, values: Mapping[str, Any]) -> Row[Any]:
    row = await db.first(insert(breaches).values(**values).returning(breaches))
    assert row is not None
    return row


async def update_breach(
    db: RequestDatabase, breach_id: uuid.UUID, values: Mapping[str, Any], *, now: datetime
) -> Row[Any] | None:
    return await db.first(
        update(breaches)
        .where(breaches.c.id == breach_id)
        .values(**values, updated_at=now)
        .returning(breaches)
    )


async def link_patients(
    db: RequestDatabase, breach_id: uuid.UUID, patient_ids: Iterable[uuid.UUID]
) -> None:
    """Link patients to a breach; linking one twice is a no-op."""
    values = [{"breach_id": breach_id, "patient_id": pid} for pid in patient_ids]
    if values:
        await db.execute(pg_insert(affected).on_conflict_do_nothing(), values)


async def replace_jurisdictions(
    db: RequestDatabase, breach_id: uuid.UUID, counts: Mapping[str, int]
) -> None:
    await db.execute(delete(jurisdictions).where(jurisdictions.c.breach_id == breach_id))
    values = [
        {"breach_id": breach_id, "jurisdiction": code, "affected_count": count}
        for code, count in sorted(counts.items())
    ]
    if values:
        await db.execute(insert(jurisdictions), values)


async def affected_patients_for(
    db: RequestDatabase,
    breach_ids: Sequence[uuid.UUID],
    *,
    scope: PatientScope,
    fields: frozenset[str] | None = None,
) -> Sequence[Row[Any]]:
    """Patient rows of the given breaches, each with its ``breach_id``: one statement
    for any number of breaches; only patients within the caller's scope, and only the
    PHI columns of the fields asked for."""
    from db.patients import patient_columns

    return await db.rows(
        select(affected.c.breach_id, *patient_columns(fields))
        .join(patients, patients.c.id == affected.c.patient_id)
        .where(affected.c.breach_id.in_(breach_ids), scope.clause(patients.c.id))
        .order_by(affected.c.breach_id, patients.c.created_at, patients.c.id)
    )


async def jurisdictions_for(
    db: RequestDatabase, breach_ids: Sequence[uuid.UUID]
) -> Sequence[Row[Any]]:
    return await db.rows(
        select(jurisdictions)
        .where(jurisdictions.c.breach_id.in_(breach_ids))
        .order_by(jurisdictions.c.breach_id, jurisdictions.c.jurisdiction)
    )


async def insert_notification(db: RequestDatabase, values: Mapping[str, Any]) -> Row[Any]:
    row = await db.first(insert(notifications).values(**values).returning(notifications))
    assert row is not None
    return row


async def notifications_for(
    db: RequestDatabase, breach_ids: Sequence[uuid.UUID]
) -> Sequence[Row[Any]]:
    return await db.rows(
        select(notifications)
        .where(notifications.c.breach_id.in_(breach_ids))
        .order_by(notifications.c.breach_id, notifications.c.sent_on, notifications.c.id)
    )
