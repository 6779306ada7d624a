from __future__ import annotations

import asyncio
from typing import Annotated

import strawberry

from db import baas as baa_repo
from db import breaches as breach_repo
from domain.data_classes import DataClass, PhiCategory
from domain.deidentification import METHOD, MIN_CELL
from domain.permissions import Permission
from graph.audit_queries import AuditQueries
from graph.directives import classified, classified_arg, phi_arg
from graph.types.analytics import AnalyticsDimension, CountCell, DeidentifiedCounts
from graph.types.baa import Baa, PhiService
from graph.types.breach import BreachIncident
from graph.types.care import BreakGlassEpisode, WorkforceUser
from graph.types.common import GraphInfo, PageInfo, response_path
from graph.types.enums import BaaStatus, BreachStatus, DeadlineStatus
from graph.types.patient import LegalHoldChange, Patient, PatientConnection, PatientEdge
from resolvers import analytics, baas, breaches, care, patients, retention
from resolvers.inputs import encode_cursor, parse_id

PUBLIC = DataClass.PUBLIC
COMPLIANCE = DataClass.COMPLIANCE
SECURITY = DataClass.SECURITY
IdArg = Annotated[strawberry.ID, classified_arg(PUBLIC)]


@strawberry.type
class Query(AuditQueries):
    @classified(PUBLIC, requires=Permission.PATIENT_RECORDS_READ, description="One patient by id.")
    async def patient(self, info: GraphInfo, id: IdArg) -> Patient:
        row = await patients.patient(
            info.context, parse_id(id, "id"), fields=info.context.read_fields
        )
        info.context.trail.returned(response_path(info), [row.id])
        return Patient.from_row(row)

    @classified(
        PUBLIC,
        requires=Permission.PATIENT_RECORDS_READ,
        description="Patients the caller may reach, in a stable order, a page at a time.",
    )
    async def patients(
        self,
        info: GraphInfo,
        first: Annotated[
            int | None, classified_arg(PUBLIC, description="Page size; default 20, at most 100.")
        ] = None,
        after: Annotated[
            str | None, classified_arg(PUBLIC, description="The endCursor of the previous page.")
        ] = None,
    ) -> PatientConnection:
        page = await patients.patient_page(info.context, first=first, after=after)
        # Every PHI field beneath the connection (whatever the caller aliased edges and
        # node to) belongs to these patients.
        info.context.trail.returned(response_path(info), [row.id for row in page.rows])
        return PatientConnection(
            edges=[
                PatientEdge(
                    cursor=encode_cursor(row.created_at, row.id), node=Patient.from_row(row)
                )
                for row in page.rows
            ],
            page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
        )

    @classified(
        PUBLIC,
        requires=Permission.PATIENT_RECORDS_READ,
        description="Patients with exactly this SSN or MRN (give one), among those the caller"
        " may reach. SSNs are matched through a keyed blind index, never by decrypting.",
    )
    async def patients_by_identifier(
        self,
        info: GraphInfo,
        ssn: Annotated[str | None, phi_arg(PhiCategory.IDENTIFIER)] = None,
        mrn: Annotated[str | None, phi_arg(PhiCategory.IDENTIFIER)] = None,
    ) -> list[Patient]:
        rows = await patients.find_patients(info.context, ssn=ssn, mrn=mrn)
        info.context.trail.returned(response_path(info), [row.id for row in rows])
        return [Patient.from_row(row) for row in rows]

    @classified(
        COMPLIANCE,
        requires=Permission.RETENTION_MANAGE,
        description="Every legal hold set on or released from a patient's record, oldest first.",
    )
    async def legal_hold_history(self, info: GraphInfo, patient_id: IdArg) -> list[LegalHoldChange]:
        rows = await retention.hold_history(info.context, parse_id(patient_id, "patientId"))
        return [
            LegalHoldChange(
                action=row.action,
                reason=row.reason,
                actor_id=row.actor_id,
                occurred_at=row.occurred_at,
            )
            for row in rows
        ]

    @classified(
        DataClass.DEIDENTIFIED,
        requires=Permission.ANALYTICS_READ,
        description="Patients counted by age band, 3-digit ZIP, diagnosis or onset year,"
        " de-identified under HIPAA Safe Harbor; small cells suppressed. No record is reachable.",
    )
    async def deidentified_counts(
        self,
        info: GraphInfo,
        by: Annotated[AnalyticsDimension, classified_arg(DataClass.DEIDENTIFIED)],
    ) -> DeidentifiedCounts:
        released = await analytics.counts(info.context, by)
        return DeidentifiedCounts(
            dimension=by,
            method=METHOD,
            minimum_cell_size=MIN_CELL,
            cells=[
                CountCell(key=c.key, patients=c.patients, suppressed=c.suppressed)
                for c in released.cells
            ],
            total=released.total,
        )

    @classified(
        COMPLIANCE,
        requires=Permission.BAA_READ,
        description="Registered services that handle PHI, with the BAA covering each;"
        " uncoveredOnly lists those handling PHI without an active BAA.",
    )
    async def phi_services(
        self,
        info: GraphInfo,
        uncovered_only: Annotated[bool, classified_arg(COMPLIANCE)] = False,
    ) -> list[PhiService]:
        found = await baas.services_and_cover(info.context, uncovered_only=uncovered_only)
        return [PhiService.from_row(row, cover) for row, cover in found]

    @classified(
        COMPLIANCE, requires=Permission.BAA_READ, description="One Business Associate Agreement."
    )
    async def baa(self, info: GraphInfo, id: IdArg) -> Baa:
        return Baa.from_row(await baas.baa(info.context, parse_id(id, "id")))

    @classified(
        COMPLIANCE,
        requires=Permission.BAA_READ,
        description="Business Associate Agreements, by vendor.",
    )
    async def baas(
        self,
        info: GraphInfo,
        status: Annotated[BaaStatus | None, classified_arg(COMPLIANCE)] = None,
    ) -> list[Baa]:
        rows = await baa_repo.list_baas(info.context.db, status=status.value if status else None)
        return [Baa.from_row(row) for row in rows]

    @classified(
        COMPLIANCE,
        requires=Permission.BAA_READ,
        description="Active agreements whose expiry date falls within the window.",
    )
    async def expiring_baas(
        self, info: GraphInfo, within_days: Annotated[int, classified_arg(COMPLIANCE)] = 90
    ) -> list[Baa]:
        return [Baa.from_row(row) for row in await baas.expiring_baas(info.context, within_days)]

    @classified(
        COMPLIANCE, requires=Permission.BREACH_READ, description="One breach incident by id."
    )
    async def breach(self, info: GraphInfo, id: IdArg) -> BreachIncident:
        return BreachIncident.from_row(await breaches.breach(info.context, parse_id(id, "id")))

    @classified(
        COMPLIANCE,
        requires=Permission.BREACH_READ,
        description="Breach incidents, most recently discovered first.",
    )
    async def breaches(
        self,
        info: GraphInfo,
        status: Annotated[BreachStatus | None, classified_arg(COMPLIANCE)] = None,
    ) -> list[BreachIncident]:
        rows = await breach_repo.list_breaches(
            info.context.db, status=status.value if status else None
        )
        return [BreachIncident.from_row(row) for row in rows]

    @classified(
        COMPLIANCE,
        requires=Permission.BREACH_READ,
        description="Breaches with a notification overdue, or due within this many days;"
        " soonest first.",
    )
    async def breach_deadlines(
        self, info: GraphInfo, within_days: Annotated[int, classified_arg(COMPLIANCE)] = 14
    ) -> list[BreachIncident]:
        rows = await breaches.with_open_deadlines(info.context, within_days)
        incidents = [BreachIncident.from_row(row) for row in rows]
        # Together, so the loaders fetch every breach's notices in one statement.
        schedules = await asyncio.gather(*(incident.deadlines(info) for incident in incidents))
        found: list[tuple[int, BreachIncident]] = []
        for incident, deadlines in zip(incidents, schedules, strict=True):
            unsent = [
                d.days_left
                for d in deadlines
                if d.status in (DeadlineStatus.PENDING, DeadlineStatus.OVERDUE)
            ]
            if unsent and min(unsent) <= within_days:
                found.append((min(unsent), incident))
        return [incident for _, incident in sorted(found, key=lambda pair: pair[0])]

    @classified(
        COMPLIANCE,
        requires=Permission.BREAK_GLASS_REVIEW,
        description="Emergency-access episodes; by default those not yet reviewed.",
    )
    async def break_glass_episodes(
        self, info: GraphInfo, reviewed: Annotated[bool | None, classified_arg(COMPLIANCE)] = False
    ) -> list[BreakGlassEpisode]:
        rows = await care.episodes(info.context, reviewed=reviewed)
        return [BreakGlassEpisode.from_row(row) for row in rows]

    @classified(SECURITY, requires=Permission.USER_MANAGE, description="Workforce accounts.")
    async def users(self, info: GraphInfo) -> list[WorkforceUser]:
        return [WorkforceUser.from_row(row) for row in await care.workforce(info.context)]
