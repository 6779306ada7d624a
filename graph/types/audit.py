from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from sqlalchemy.engine import Row

from domain.data_classes import DataClass
from graph.directives import PhiCategory, classified
from graph.types.common import PageInfo
from graph.types.enums import AuditOutcome, PurposeOfUse

AUDIT = DataClass.AUDIT
PUBLIC = DataClass.PUBLIC


@strawberry.type(description="One audit entry: who, what, when, where, why; never a value.")
class AuditEvent:
    id: strawberry.ID = classified(PUBLIC)
    occurred_at: datetime = classified(AUDIT)
    category: str = classified(AUDIT, description="ACCESS or SECURITY.")
    action: str = classified(
        AUDIT, description="READ, WRITE, DELETE, AUDIT_QUERY, or a security event."
    )
    outcome: str = classified(AUDIT, description="ALLOWED, DENIED or ERROR.")
    actor_id: str | None = classified(AUDIT)
    actor_kind: str | None = classified(AUDIT)
    role: str | None = classified(AUDIT)
    session_id: str | None = classified(AUDIT)
    purpose: str | None = classified(AUDIT)
    break_glass: bool = classified(AUDIT)
    break_glass_episode_id: str | None = classified(
        AUDIT, description="The emergency-access episode the PHI was reached through."
    )
    operation_name: str | None = classified(AUDIT)
    document_hash: str | None = classified(AUDIT)
    field_path: str | None = classified(AUDIT, description="Schema coordinate, e.g. Patient.ssn.")
    data_class: str | None = classified(AUDIT)
    record_id: str | None = classified(AUDIT, description="The patient the field belongs to.")
    client_ip: str | None = classified(AUDIT)
    user_agent: str | None = classified(AUDIT)
    request_id: str | None = classified(AUDIT)
    reason: str | None = classified(AUDIT)

    @classmethod
    def from_row(cls, row: Row[Any]) -> AuditEvent:
        return cls(
            id=strawberry.ID(f"{row.id}:{row.entry_ordinal}"),
            occurred_at=row.occurred_at,
            category=row.category,
            action=row.action,
            outcome=row.outcome,
            actor_id=row.actor_id,
            actor_kind=row.actor_kind,
            role=row.role,
            session_id=str(row.session_id) if row.session_id else None,
            purpose=row.purpose,
            break_glass=row.break_glass,
            break_glass_episode_id=str(row.break_glass_episode_id)
            if row.break_glass_episode_id
            else None,
            operation_name=row.operation_name,
            document_hash=row.document_hash,
            field_path=row.field_path,
            data_class=row.data_class,
            record_id=row.entry_record,
            client_ip=row.client_ip,
            user_agent=row.user_agent,
            request_id=row.request_id,
            reason=row.reason,
        )


@strawberry.type
class AuditEventEdge:
    cursor: str = classified(PUBLIC)
    node: AuditEvent = classified(PUBLIC)


@strawberry.type
class AuditEventConnection:
    edges: list[AuditEventEdge] = classified(PUBLIC)
    page_info: PageInfo = classified(PUBLIC)


@strawberry.input(description="All given conditions must hold.")
class AuditEventFilter:
    actor_id: str | None = classified(AUDIT, default=None)
    patient_id: strawberry.ID | None = classified(AUDIT, default=None)
    field_category: PhiCategory | None = classified(AUDIT, default=None)
    purpose: PurposeOfUse | None = classified(AUDIT, default=None)
    outcome: AuditOutcome | None = classified(AUDIT, default=None)
    since: datetime | None = classified(AUDIT, default=None)
    until: datetime | None = classified(AUDIT, default=None)


@strawberry.type(description="One patient a user touched, and which categories of their PHI.")
class PatientAccess:
    patient_id: strawberry.ID = classified(PUBLIC)
    categories: list[str] = classified(AUDIT)
    accesses: int = classified(AUDIT)
    last_access_at: datetime = classified(AUDIT)


@strawberry.type(description="Who accessed this patient's PHI, when and why (45 CFR 164.528).")
class Disclosure:
    occurred_at: datetime = classified(AUDIT)
    request_id: str | None = classified(AUDIT)
    actor_id: str | None = classified(AUDIT)
    actor_kind: str | None = classified(AUDIT)
    role: str | None = classified(AUDIT)
    purpose: str | None = classified(AUDIT)
    break_glass: bool = classified(AUDIT)
    break_glass_episode_id: strawberry.ID | None = classified(
        AUDIT, description="The emergency-access episode the PHI was reached through."
    )
    outcome: str = classified(AUDIT)
    actions: list[str] = classified(AUDIT)
    fields: list[str] = classified(AUDIT)


@strawberry.type
class Count:
    key: str = classified(AUDIT)
    count: int = classified(AUDIT)


@strawberry.type
class ComplianceStatistics:
    days: int = classified(AUDIT)
    accesses_by_role: list[Count] = classified(AUDIT)
    accesses_by_purpose: list[Count] = classified(AUDIT)
    accesses_by_category: list[Count] = classified(AUDIT)
    denials_by_reason: list[Count] = classified(AUDIT)
    break_glass_accesses: int = classified(AUDIT)
    failed_logins: int = classified(AUDIT)
    lockouts: int = classified(AUDIT)


@strawberry.type
class AuditAnomaly:
    kind: str = classified(
        AUDIT, description="BULK_ACCESS, OFF_HOURS_ACCESS, DENIAL_BURST or BREAK_GLASS_UNREVIEWED."
    )
    actor_id: str | None = classified(AUDIT)
    window_start: datetime = classified(AUDIT)
    window_end: datetime | None = classified(AUDIT)
    count: int = classified(AUDIT)
    detail: str = classified(AUDIT)


def counts(mapping: dict[str, int]) -> list[Count]:
    return [
        Count(key=key, count=value)
        for key, value in sorted(mapping.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
