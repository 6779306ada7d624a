"""Legal holds and hard deletion of patient records. Deletion is a real DELETE (no soft
deletes anywhere): diagnoses, consents, care-team and breach links and hold history go
with the patient by cascade; the audit trail keeps the ids and that it happened."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, text, tuple_, update
from sqlalchemy.engine import Row

from db.models import LegalHoldEvent, Patient, RetentionPolicy
from db.unit_of_work import RequestDatabase
from db.visibility import PatientScope

patients = Patient.__table__
hold_events = LegalHoldEvent.__table__


async def change_hold(
    db: RequestDatabase,
    patient_id: uuid.UUID,
    *,
    held: bool,
    reason: str,
    actor_id: str | None,
    now: datetime,
    scope: PatientScope,
) -> Row[Any] | None:
    """Set or release the hold and append it to the history, in one transaction."""
    updated = await db.first(
        update(patients)
        .where(patients.c.id == patient_id, scope.clause(patients.c.id))
        .values(
            legal_hold=held,
            legal_hold_reason=reason if held else None,
            legal_hold_set_by=actor_id if held else None,
            legal_hold_set_at=now if held else None,
            updated_at=now,
        )
        .returning(*patients.c)
    )
    if updated is not None:
        await db.execute(
            insert(hold_events).values(
                id=uuid.uuid4(),
                patient_id=patient_id,
                action="SET" if held else "RELEASED",
                reason=reason,
                actor_id=actor_id,
                occurred_at=now,
            )
        )
    return updated


async def hold_history(db: RequestDatabase, patient_ids: Sequence[uuid.UUID]) -> Sequence[Row[Any]]:
    return await db.rows(
        select(hold_events)
        .where(hold_events.c.patient_id.in_(patient_ids))
        .order_by(hold_events.c.occurred_at, hold_events.c.id)
    )


async def delete_patients(
    db: RequestDatabase, patient_ids: Sequence[uuid.UUID], scope: PatientScope
) -> list[uuid.UUID]:
    """Delete these records unless held (checked again here, in the same statement, so a
    hold set meanwhile still wins). Returns the ids actually deleted."""
    rows = await db.rows(
        delete(patients)
        .where(
            patients.c.id.in_(patient_ids),
            patients.c.legal_hold.is_(False),
            scope.clause(patients.c.id),
        )
        .returning(patients.c.id)
    )
    return [row.id for row in rows]


async def retention_candidates(
    db: RequestDatabase,
    *,
    changed_before: datetime,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> Sequence[Row[Any]]:
    """Unheld records not changed since ``changed_before`` (the domain rule decides),
    oldest first, a page at a time, locked so no hold is set while they go."""
    query = (
        select(
            patients.c.id,
            patients.c.updated_at,
            patients.c.date_of_birth,
            patients.c.retention_class,
        )
        .where(patients.c.legal_hold.is_(False), patients.c.updated_at < changed_before)
        .order_by(patients.c.updated_at, patients.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if after is not None:
        query = query.where(tuple_(patients.c.updated_at, patients.c.id) > tuple_(*after))
    return await db.rows(query)


async def sweep(db: RequestDatabase, batch: int, configured_days: int) -> list[uuid.UUID]:
    """Delete up to ``batch`` unheld records past the longer of the database's retention
    period and ``configured_days`` (``phigate.retention_sweep``, migration 0021); none
    when another gateway is sweeping. Returns the ids deleted."""
    rows = await db.rows(
        text("SELECT phigate.retention_sweep(:batch, :days) AS id"),
        {"batch": batch, "days": configured_days},
    )
    return [row.id for row in rows]


async def policy_days(connection: Any) -> int:
    return int(await connection.scalar(select(RetentionPolicy.__table__.c.days)))


async def set_policy_days(connection: Any, days: int) -> None:
    """The retention period the scheduled sweep applies (schema owner only)."""
    await connection.execute(update(RetentionPolicy.__table__).values(days=days))
