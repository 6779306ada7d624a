from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from db.audit_queries import EventFilter
from domain.data_classes import DataClass
from domain.permissions import Permission
from graph.directives import classified, classified_arg
from graph.types.audit import (
    AuditAnomaly,
    AuditEvent,
    AuditEventConnection,
    AuditEventEdge,
    AuditEventFilter,
    ComplianceStatistics,
    Disclosure,
    PatientAccess,
    counts,
)
from graph.types.common import GraphInfo, PageInfo
from resolvers import audit_queries, compliance_report

AUDIT = DataClass.AUDIT
PUBLIC = DataClass.PUBLIC
READ = Permission.AUDIT_READ


@strawberry.type
class AuditQueries:
    @classified(AUDIT, requires=READ, description="Audit entries, most recent first.")
    async def audit_events(
        self,
        info: GraphInfo,
        filter: Annotated[AuditEventFilter | None, classified_arg(AUDIT)] = None,
        first: Annotated[int | None, classified_arg(PUBLIC)] = None,
        after: Annotated[str | None, classified_arg(PUBLIC)] = None,
    ) -> AuditEventConnection:
        given = filter or AuditEventFilter()
        where = EventFilter(
            actor_id=given.actor_id,
            patient_id=str(given.patient_id) if given.patient_id else None,
            data_class=given.field_category.value if given.field_category else None,
            purpose=given.purpose.value if given.purpose else None,
            outcome=given.outcome.value if given.outcome else None,
            since=given.since,
            until=given.until,
        )
        page = await audit_queries.events(info.context, where, first=first, after=after)
        edges = [
            AuditEventEdge(
                cursor=audit_queries.encode_event_cursor(
                    row.occurred_at, row.id, row.entry_ordinal
                ),
                node=AuditEvent.from_row(row),
            )
            for row in page.rows
        ]
        return AuditEventConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.has_next_page, end_cursor=edges[-1].cursor if edges else None
            ),
        )

    @classified(
        AUDIT, requires=READ, description="Which patients and categories of PHI a user touched."
    )
    async def phi_access_summary(
        self,
        info: GraphInfo,
        user_id: Annotated[str, classified_arg(AUDIT)],
        days: Annotated[int, classified_arg(AUDIT)] = 30,
    ) -> list[PatientAccess]:
        rows = await audit_queries.access_summary(info.context, user_id, days)
        return [
            PatientAccess(
                patient_id=strawberry.ID(row.record_id),
                categories=sorted(c for c in row.categories if c),
                accesses=row.accesses,
                last_access_at=row.last_access,
            )
            for row in rows
        ]

    @classified(
        AUDIT,
        requires=READ,
        description="The compliance report for a period (JSON): PHI access and denials by"
        " role, purpose and category; break-glass review; breaches and their notification"
        " deadlines; BAAs; accounts without MFA, locked or disabled; and whether the audit"
        " chain verifies (recomputed now). Counts and ids only.",
    )
    async def compliance_report(
        self,
        info: GraphInfo,
        from_: Annotated[datetime, classified_arg(AUDIT, name="from")],
        to: Annotated[datetime, classified_arg(AUDIT)],
    ) -> JSON:
        ctx = info.context
        ctx.trail.note("AUDIT_QUERY", "Query.complianceReport", None)
        return await compliance_report.build(ctx.db, since=from_, until=to, now=ctx.now)

    @classified(
        AUDIT, requires=READ, description="An accounting of disclosures of one patient's PHI."
    )
    async def accounting_of_disclosures(
        self,
        info: GraphInfo,
        patient_id: Annotated[strawberry.ID, classified_arg(PUBLIC)],
        from_: Annotated[datetime, classified_arg(AUDIT, name="from")],
        to: Annotated[datetime, classified_arg(AUDIT)],
    ) -> list[Disclosure]:
        rows = await audit_queries.disclosures(info.context, str(patient_id), from_, to)
        return [
            Disclosure(
                occurred_at=row.occurred_at,
                request_id=row.request_id,
                actor_id=row.actor_id,
                actor_kind=row.actor_kind,
                role=row.role,
                purpose=row.purpose,
                break_glass=row.break_glass,
                break_glass_episode_id=strawberry.ID(row.break_glass_episode_id)
                if row.break_glass_episode_id
                else None,
                outcome=row.outcome,
                actions=sorted(row.actions),
                fields=sorted(f for f in row.fields if f),
            )
            for row in rows
        ]

    @classified(
        AUDIT, requires=READ, description="Accesses by role, purpose and category; denials; logins."
    )
    async def compliance_statistics(
        self, info: GraphInfo, days: Annotated[int, classified_arg(AUDIT)] = 30
    ) -> ComplianceStatistics:
        stats = await audit_queries.statistics(info.context, days)
        return ComplianceStatistics(
            days=stats.days,
            accesses_by_role=counts(stats.accesses_by_role),
            accesses_by_purpose=counts(stats.accesses_by_purpose),
            accesses_by_category=counts(stats.accesses_by_category),
            denials_by_reason=counts(stats.denials_by_reason),
            break_glass_accesses=stats.break_glass_accesses,
            failed_logins=stats.failed_logins,
            lockouts=stats.lockouts,
        )

    @classified(
        AUDIT,
        requires=READ,
        description="Bulk access, off-hours access, denial bursts, unreviewed break-glass.",
    )
    async def audit_anomalies(
        self, info: GraphInfo, days: Annotated[int, classified_arg(AUDIT)] = 7
    ) -> list[AuditAnomaly]:
        found = await audit_queries.anomalies(info.context, days, info.context.anomaly_limits)
        return [
            AuditAnomaly(
                kind=a.kind,
                actor_id=a.actor_id,
                window_start=a.window_start,
                window_end=a.window_end,
                count=a.count,
                detail=a.detail,
            )
            for a in found
        ]
