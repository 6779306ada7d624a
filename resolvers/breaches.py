"""Breach incidents: report, assess, update, record notifications."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy.engine import Row

from db import breaches as repo
from db import patients as patient_repo
from domain.breaches import (
    BREACH_LIFECYCLE,
    BreachStatus,
    NotificationMethod,
    NotificationRecipient,
    RiskConclusion,
    conclusion_rule,
    law_enforcement_delay_rule,
    timeline_rule,
)
from domain.errors import FieldViolation, InvalidInput, NotFound, Violations
from domain.geography import jurisdiction_rule
from domain.patients import text_rule
from resolvers.context import RequestContext

MAX_DEADLINE_WINDOW_DAYS = 365
_TEXT_LIMITS = {"title": 200, "description": 5000, "root_cause": 5000}
_RISK_FIELDS = {
    "risk_nature_and_extent": "natureAndExtent",
    "risk_unauthorized_recipient": "unauthorizedRecipient",
    "risk_acquired_or_viewed": "acquiredOrViewed",
    "risk_mitigation": "mitigation",
}


def _check_text(values: Mapping[str, Any], violations: Violations) -> None:
    for column, limit in _TEXT_LIMITS.items():
        if column in values:
            value = values[column]
            path = f"input.{'rootCause' if column == 'root_cause' else column}"
            if value is None:
                violations.check(path, "must not be null" if column == "title" else None)
            else:
                violations.check(
                    path, text_rule(value, max_length=limit, required=column == "title")
                )
    for index, action in enumerate(values.get("remediation_actions") or ()):
        violations.check(f"input.remediationActions[{index}]", text_rule(action, max_length=1000))


def _check_jurisdictions(
    counts: Mapping[str, int] | None, violations: Violations, affected_count: int | None
) -> None:
    if counts is None:
        return
    for code, count in counts.items():
        violations.check(f"input.jurisdictions.{code}", jurisdiction_rule(code))
        violations.check(
            f"input.jurisdictions.{code}", "must count at least 1" if count < 1 else None
        )
    if affected_count is not None and sum(counts.values()) > affected_count:
        violations.check(
            "input.jurisdictions", "must not count more individuals than affectedCount"
        )


async def breach(ctx: RequestContext, breach_id: uuid.UUID, *, field: str = "id") -> Row[Any]:
    row = await repo.get_breach(ctx.db, breach_id)
    if row is None:
        raise NotFound("breach incident", field)
    return row


async def _affected(
    ctx: RequestContext, patient_ids: Sequence[uuid.UUID], path: str
) -> Sequence[Row[Any]]:
    unique = list(dict.fromkeys(patient_ids))
    found = await patient_repo.patients_by_ids(ctx.db, unique, ctx.scope) if unique else []
    if len(found) != len(unique):
        raise NotFound("patient", path)
    return found


async def report_breach(
    ctx: RequestContext,
    values: Mapping[str, Any],
    *,
    affected_patient_ids: Sequence[uuid.UUID],
    jurisdictions: Mapping[str, int] | None,
) -> Row[Any]:
    violations = Violations()
    _check_text(values, violations)
    violations.check(
        "input.discoveredAt",
        timeline_rule(values.get("occurred_at"), values["discovered_at"], now=ctx.now),
    )
    linked = await _affected(ctx, affected_patient_ids, "input.affectedPatientIds")
    affected_count = values.get("affected_count")
    if affected_count is None:
        affected_count = len(linked)
    elif affected_count < len(linked):
        violations.check("input.affectedCount", "must be at least the number of affectedPatientIds")
    if jurisdictions is None:
        # Default: where the linked patients live, as far as their addresses tell.
        jurisdictions = dict(Counter(p.address_state for p in linked if p.address_state))
    _check_jurisdictions(jurisdictions, violations, affected_count)
    violations.raise_if_any()
    row = await repo.insert_breach(
        ctx.db,
        {
            **values,
            "affected_count": affected_count,
            "status": BreachStatus.REPORTED.value,
            "remediation_actions": values.get("remediation_actions") or [],
            "reported_by": ctx.actor_id,
            "created_at": ctx.now,
            "updated_at": ctx.now,
        },
    )
    await repo.link_patients(ctx.db, row.id, [p.id for p in linked])
    await repo.replace_jurisdictions(ctx.db, row.id, jurisdictions)
    return row


async def update_breach(
    ctx: RequestContext,
    breach_id: uuid.UUID,
    changes: Mapping[str, Any],
    *,
    add_affected_patient_ids: Sequence[uuid.UUID],
    jurisdictions: Mapping[str, int] | None,
) -> Row[Any]:
    current = await breach(ctx, breach_id, field="input.id")
    violations = Violations()
    _check_text(changes, violations)
    for column, name in _RISK_FIELDS.items():
        if changes.get(column) is not None:
            violations.check(
                f"input.riskAssessment.{name}", text_rule(changes[column], max_length=5000)
            )
    values = dict(changes)
    for column, path in (
        ("status", "status"),
        ("discovered_at", "discoveredAt"),
        ("phi_categories", "phiCategories"),
    ):
        if column in values and values[column] is None:
            violations.check(f"input.{path}", "must not be null")
    if "risk_conclusion" in values:
        values["risk_assessed_at"] = ctx.now
        if values["risk_conclusion"] is not None:
            missing = [
                name
                for column, name in _RISK_FIELDS.items()
                if not values.get(column, getattr(current, column))
            ]
            for name in missing:
                violations.check(
                    f"input.riskAssessment.{name}", "must be recorded before a conclusion is drawn"
                )
    target = values.get("status")
    if target is not None and target != current.status and not violations:
        BREACH_LIFECYCLE.require(BreachStatus(current.status), BreachStatus(target))
        conclusion = values.get("risk_conclusion", current.risk_conclusion)
        violations.check(
            "input.status",
            conclusion_rule(
                BreachStatus(target), RiskConclusion(conclusion) if conclusion else None
            ),
        )
    if values.get("discovered_at") is not None or "occurred_at" in values:
        violations.check(
            "input.discoveredAt",
            timeline_rule(
                values.get("occurred_at", current.occurred_at),
                values.get("discovered_at", current.discovered_at),
                now=ctx.now,
            ),
        )
    violations.check(
        "input.lawEnforcementDelayDays",
        law_enforcement_delay_rule(values.get("law_enforcement_delay_days")),
    )
    linked = await _affected(ctx, add_affected_patient_ids, "input.addAffectedPatientIds")
    affected_count = values.get("affected_count", current.affected_count)
    if affected_count is None:
        violations.check("input.affectedCount", "must not be null")
    _check_jurisdictions(jurisdictions, violations, affected_count)
    violations.raise_if_any()
    await repo.link_patients(ctx.db, breach_id, [p.id for p in linked])
    if jurisdictions is not None:
        await repo.replace_jurisdictions(ctx.db, breach_id, jurisdictions)
    updated = await repo.update_breach(ctx.db, breach_id, values, now=ctx.now)
    if updated is None:
        raise NotFound("breach incident", "input.id")
    return updated


async def record_notification(
    ctx: RequestContext,
    breach_id: uuid.UUID,
    *,
    recipient: NotificationRecipient,
    method: NotificationMethod,
    sent_on: date,
) -> Row[Any]:
    current = await breach(ctx, breach_id, field="input.breachId")
    violations = Violations()
    if current.status not in (BreachStatus.CONFIRMED_BREACH.value, BreachStatus.NOTIFYING.value):
        violations.check("input.breachId", "names an incident that is not a confirmed breach")
    if sent_on > ctx.today:
        violations.check("input.sentOn", "must not be in the future")
    if sent_on < current.discovered_at.date():
        violations.check("input.sentOn", "must not be before the breach was discovered")
    violations.raise_if_any()
    return await repo.insert_notification(
        ctx.db,
        {
            "breach_id": breach_id,
            "recipient": recipient.value,
            "method": method.value,
            "sent_on": sent_on,
            "recorded_by": ctx.actor_id,
            "recorded_at": ctx.now,
        },
    )


async def with_open_deadlines(ctx: RequestContext, within_days: int) -> Sequence[Row[Any]]:
    """Breaches that may still owe notices (the filter on deadlines is the caller's:
    it needs each breach's jurisdictions and notices, which the loaders batch)."""
    if not 0 <= within_days <= MAX_DEADLINE_WINDOW_DAYS:
        raise InvalidInput(
            [FieldViolation("withinDays", f"must be between 0 and {MAX_DEADLINE_WINDOW_DAYS}")]
        )
    return await repo.list_breaches(ctx.db)
