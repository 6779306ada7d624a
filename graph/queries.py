from __future__ import annotations

from typing import Annotated

import strawberry

from db import baas as baa_repo
from db import breaches as breach_repo
from domain.data_classes import DataClass
from graph.directives import classified, classified_arg
from graph.types.baa import Baa
from graph.types.breach import BreachIncident
from graph.types.common import GraphInfo, PageInfo
from graph.types.enums import BaaStatus, BreachStatus
from graph.types.patient import Patient, PatientConnection, PatientEdge
from resolvers import baas, breaches, patients
from resolvers.inputs import encode_cursor, parse_id

PUBLIC = DataClass.PUBLIC
COMPLIANCE = DataClass.COMPLIANCE
IdArg = Annotated[strawberry.ID, classified_arg(PUBLIC)]


@strawberry.type
class Query:
    @classified(PUBLIC, description="One patient by id.")
    async def patient(self, info: GraphInfo, id: IdArg) -> Patient:
        return Patient.from_row(await patients.patient(info.context, parse_id(id, "id")))

    @classified(PUBLIC, description="Patients in a stable order, a page at a time.")
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
        return PatientConnection(
            edges=[
                PatientEdge(
                    cursor=encode_cursor(row.created_at, row.id), node=Patient.from_row(row)
                )
                for row in page.rows
            ],
            page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
        )

    @classified(COMPLIANCE, description="One Business Associate Agreement by id.")
    async def baa(self, info: GraphInfo, id: IdArg) -> Baa:
        return Baa.from_row(await baas.baa(info.context, parse_id(id, "id")))

    @classified(COMPLIANCE, description="Business Associate Agreements, by vendor name.")
    async def baas(
        self,
        info: GraphInfo,
        status: Annotated[BaaStatus | None, classified_arg(COMPLIANCE)] = None,
    ) -> list[Baa]:
        rows = await baa_repo.list_baas(info.context.db, status=status.value if status else None)
        return [Baa.from_row(row) for row in rows]

    @classified(
        COMPLIANCE, description="Active agreements whose expiry date falls within the window."
    )
    async def expiring_baas(
        self, info: GraphInfo, within_days: Annotated[int, classified_arg(COMPLIANCE)] = 90
    ) -> list[Baa]:
        return [Baa.from_row(row) for row in await baas.expiring_baas(info.context, within_days)]

    @classified(COMPLIANCE, description="One breach incident by id.")
    async def breach(self, info: GraphInfo, id: IdArg) -> BreachIncident:
        return BreachIncident.from_row(await breaches.breach(info.context, parse_id(id, "id")))

    @classified(COMPLIANCE, description="Breach incidents, most recently discovered first.")
    async def breaches(
        self,
        info: GraphInfo,
        status: Annotated[BreachStatus | None, classified_arg(COMPLIANCE)] = None,
    ) -> list[BreachIncident]:
        rows = await breach_repo.list_breaches(
            info.context.db, status=status.value if status else None
        )
        return [BreachIncident.from_row(row) for row in rows]
