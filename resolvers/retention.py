"""Legal holds and deletion of a patient's record, one request at a time; and the
retention run that deletes what has outlived its retention period."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Row

from db import audit
from db import retention as repo
from db.unit_of_work import RequestDatabase
from db.visibility import SYSTEM, require_owner
from domain import retention as rules
from domain.errors import FieldViolation, InvalidInput, NotFound, Violations
from domain.patients import RetentionClass
from resolvers.context import RequestContext
from resolvers.patients import patient


async def change_legal_hold(
    ctx: RequestContext, patient_id: uuid.UUID, *, held: bool, reason: str
) -> Row[Any]:
    current = await patient(ctx, patient_id, field="input.patientId")
    violations = Violations()
    violations.check("input.reason", rules.hold_reason_rule(reason))
    violations.check("input.patientId", rules.hold_change_rule(current.legal_hold, setting=held))
    violations.raise_if_any()
    updated = await repo.change_hold(
        ctx.db,
        patient_id,
        held=held,
        reason=reason.strip(),
        actor_id=ctx.actor_id,
        now=ctx.now,
        scope=ctx.scope,
    )
    if updated is None:
        raise NotFound("patient", "input.patientId")
    ctx.trail.note(
        "LEGAL_HOLD_SET" if held else "LEGAL_HOLD_RELEASED", "Patient.legalHold", str(patient_id)
    )
    return updated


async def delete_patient(
    ctx: RequestContext, patient_id: uuid.UUID, reason: rules.DeletionReason
) -> uuid.UUID:
    current = await patient(ctx, patient_id, field="input.id")
    if reason is rules.DeletionReason.RETENTION_EXPIRED:
        raise InvalidInput(
            [FieldViolation("input.reason", "RETENTION_EXPIRED is for `phigate retention run`")]
        )
    violations = Violations()
    violations.check("input.id", rules.deletion_rule(current.legal_hold))
    violations.raise_if_any()
    ctx.trail.deleted("Patient", patient_id, reason.value)
    deleted = await repo.delete_patients(ctx.db, [patient_id], ctx.scope)
    if not deleted:
        raise NotFound("patient", "input.id")
    return patient_id


async def hold_history(ctx: RequestContext, patient_id: uuid.UUID) -> Sequence[Row[Any]]:
    await patient(ctx, patient_id, field="patientId")
    return await repo.hold_history(ctx.db, [patient_id])


@dataclass
class RetentionReport:
    days: int
    examined: int = 0
    expired: int = 0
    deleted: int = 0
    kept_by_class: dict[str, int] = field(default_factory=dict)


async def run_retention(
    engine: Any,
    *,
    days: int,
    now: datetime,
    dry_run: bool,
    audit_base: dict[str, Any],
    batch: int = 200,
    progress: Callable[[RetentionReport], None] = lambda report: None,
) -> RetentionReport:
    """Delete every unheld record past retention, a batch per transaction; each batch's
    audit row (who ran it, which record ids) is written first, in that transaction."""
    report = RetentionReport(days=days)
    after: tuple[datetime, uuid.UUID] | None = None
    changed_before = now - timedelta(days=days)
    while True:
        db = RequestDatabase(engine, opening=require_owner)
        try:
            rows = await repo.retention_candidates(
                db, changed_before=changed_before, after=after, limit=batch
            )
            if not rows:
                break
            after = (rows[-1].updated_at, rows[-1].id)
            report.examined += len(rows)
            expired = []
            for row in rows:
                kind = RetentionClass(row.retention_class)
                if rules.is_expired(
                    kind,
                    last_changed=row.updated_at.date(),
                    date_of_birth=row.date_of_birth,
                    days=days,
                    today=now.date(),
                ):
                    expired.append(row.id)
                else:
                    report.kept_by_class[kind.value] = report.kept_by_class.get(kind.value, 0) + 1
            report.expired += len(expired)
            if expired and not dry_run:
                await audit.append(db, [_deleted_entry(audit_base, now, expired)])
                report.deleted += len(await repo.delete_patients(db, expired, SYSTEM))
                await db.commit()
            progress(report)
        finally:
            await db.close()
    return report


SWEEPER = "phigate:retention-schedule"


async def sweep_retention(engine: Any, *, batch: int, now: datetime, days: int) -> int:
    """The scheduled retention run, as the gateway (no owner credentials): the database
    picks and deletes what is past its retention period, a batch per transaction, and
    each batch's audit entry is written in that transaction, so neither happens without
    the other. Returns how many records went."""
    base = {
        "actor_id": SWEEPER,
        "actor_kind": "SYSTEM",
        "operation_name": "retention schedule",
        "request_id": f"retention-{now:%Y%m%dT%H%M%S}",
    }
    deleted = 0
    while True:
        db = RequestDatabase(engine)
        try:
            ids = await repo.sweep(db, batch, days)
            if ids:
                await audit.append(db, [_deleted_entry(base, now, ids)])
            await db.commit()
        finally:
            await db.close()
        deleted += len(ids)
        if len(ids) < batch:
            return deleted


def _deleted_entry(base: dict[str, Any], now: datetime, ids: Sequence[uuid.UUID]) -> dict[str, Any]:
    """The audit entry of records deleted for having outlived their retention period."""
    return {
        **base,
        "occurred_at": now,
        "category": "ACCESS",
        "action": "DELETE",
        "outcome": "ALLOWED",
        "field_path": "Patient",
        "record_ids": sorted(ids),
        "reason": rules.DeletionReason.RETENTION_EXPIRED.value,
    }
