from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

import strawberry
from sqlalchemy.engine import Row

from domain.breaches import notification_required, notification_schedule
from domain.data_classes import DataClass
from graph.directives import PhiCategory, classified
from graph.types.common import GraphInfo, response_path
from graph.types.enums import (
    BreachStatus,
    DeadlineStatus,
    NotificationMethod,
    NotificationRecipient,
    RiskConclusion,
)
from graph.types.patient import Patient

COMPLIANCE = DataClass.COMPLIANCE
PUBLIC = DataClass.PUBLIC


@strawberry.type(description="The four-factor assessment of 45 CFR 164.402(2).")
class RiskAssessment:
    nature_and_extent: str | None = classified(COMPLIANCE)
    unauthorized_recipient: str | None = classified(COMPLIANCE)
    acquired_or_viewed: str | None = classified(COMPLIANCE)
    mitigation: str | None = classified(COMPLIANCE)
    conclusion: RiskConclusion | None = classified(COMPLIANCE)
    assessed_at: datetime | None = classified(COMPLIANCE)


@strawberry.type(description="Affected individuals residing in one State or jurisdiction.")
class JurisdictionCount:
    jurisdiction: str = classified(COMPLIANCE)
    affected_count: int = classified(COMPLIANCE)


@strawberry.type
class BreachNotification:
    id: strawberry.ID = classified(PUBLIC)
    recipient: NotificationRecipient = classified(COMPLIANCE)
    method: NotificationMethod = classified(COMPLIANCE)
    sent_on: date = classified(COMPLIANCE)
    recorded_at: datetime = classified(COMPLIANCE)

    @classmethod
    def from_row(cls, row: Row[Any]) -> BreachNotification:
        return cls(
            id=strawberry.ID(str(row.id)),
            recipient=NotificationRecipient(row.recipient),
            method=NotificationMethod(row.method),
            sent_on=row.sent_on,
            recorded_at=row.recorded_at,
        )


@strawberry.type(description="When a notice is due, and whether it was sent in time.")
class NotificationDeadline:
    recipient: NotificationRecipient = classified(COMPLIANCE)
    jurisdiction: str | None = classified(
        COMPLIANCE, description="For media notice: the State with more than 500 affected."
    )
    due_on: date = classified(COMPLIANCE)
    citation: str = classified(COMPLIANCE)
    status: DeadlineStatus = classified(COMPLIANCE)
    sent_on: date | None = classified(COMPLIANCE, description="The first notice sent.")
    days_left: int = classified(COMPLIANCE, description="Negative once the due date has passed.")


@strawberry.type(description="A security incident assessed under the Breach Notification Rule.")
class BreachIncident:
    row_id: strawberry.Private[uuid.UUID]
    discovered_on: strawberry.Private[date]
    id: strawberry.ID = classified(PUBLIC)
    title: str = classified(COMPLIANCE)
    description: str | None = classified(COMPLIANCE)
    discovered_at: datetime = classified(COMPLIANCE)
    occurred_at: datetime | None = classified(COMPLIANCE)
    status: BreachStatus = classified(COMPLIANCE)
    affected_count: int = classified(COMPLIANCE)
    phi_categories: list[PhiCategory] = classified(COMPLIANCE)
    risk_assessment: RiskAssessment = classified(COMPLIANCE)
    root_cause: str | None = classified(COMPLIANCE)
    remediation_actions: list[str] = classified(COMPLIANCE)
    law_enforcement_delay_days: int | None = classified(COMPLIANCE)
    notification_required: bool = classified(
        COMPLIANCE,
        description="False only once the risk assessment showed a low probability of compromise.",
    )
    created_at: datetime = classified(COMPLIANCE)
    updated_at: datetime = classified(COMPLIANCE)

    @classified(
        PUBLIC, description="Patients on record as affected; their fields keep their own classes."
    )
    async def affected_patients(self, info: GraphInfo) -> list[Patient]:
        rows = await info.context.loaders.affected_patients.load(self.row_id)
        info.context.trail.returned(response_path(info), [row.id for row in rows])
        return [Patient.from_row(row) for row in rows]

    @classified(COMPLIANCE)
    async def jurisdictions(self, info: GraphInfo) -> list[JurisdictionCount]:
        rows = await info.context.loaders.jurisdictions.load(self.row_id)
        return [
            JurisdictionCount(jurisdiction=r.jurisdiction, affected_count=r.affected_count)
            for r in rows
        ]

    @classified(COMPLIANCE)
    async def notifications(self, info: GraphInfo) -> list[BreachNotification]:
        rows = await info.context.loaders.notifications.load(self.row_id)
        return [BreachNotification.from_row(row) for row in rows]

    @classified(
        COMPLIANCE,
        description="Notification deadlines from the discovery date (45 CFR 164.404-.412);"
        " empty when no notification is required.",
    )
    async def deadlines(self, info: GraphInfo) -> list[NotificationDeadline]:
        if not self.notification_required:
            return []
        loaders = info.context.loaders
        today = info.context.today
        schedule = notification_schedule(
            self.discovered_on,
            affected_count=self.affected_count,
            residents={
                r.jurisdiction: r.affected_count
                for r in await loaders.jurisdictions.load(self.row_id)
            },
            law_enforcement_delay_days=self.law_enforcement_delay_days or 0,
            notices=(
                (NotificationRecipient(r.recipient), r.sent_on)
                for r in await loaders.notifications.load(self.row_id)
            ),
            today=today,
        )
        return [
            NotificationDeadline(
                recipient=notice.deadline.recipient,
                jurisdiction=notice.deadline.jurisdiction,
                due_on=notice.deadline.due_on,
                citation=notice.deadline.citation,
                status=notice.status,
                sent_on=notice.sent_on,
                days_left=(notice.deadline.due_on - today).days,
            )
            for notice in schedule
        ]

    @classmethod
    def from_row(cls, row: Row[Any]) -> BreachIncident:
        return cls(
            row_id=row.id,
            id=strawberry.ID(str(row.id)),
            title=row.title,
            description=row.description,
            discovered_at=row.discovered_at,
            occurred_at=row.occurred_at,
            status=BreachStatus(row.status),
            affected_count=row.affected_count,
            phi_categories=[PhiCategory(value) for value in row.phi_categories],
            risk_assessment=RiskAssessment(
                nature_and_extent=row.risk_nature_and_extent,
                unauthorized_recipient=row.risk_unauthorized_recipient,
                acquired_or_viewed=row.risk_acquired_or_viewed,
                mitigation=row.risk_mitigation,
                conclusion=RiskConclusion(row.risk_conclusion) if row.risk_conclusion else None,
                assessed_at=row.risk_assessed_at,
            ),
            root_cause=row.root_cause,
            remediation_actions=list(row.remediation_actions),
            law_enforcement_delay_days=row.law_enforcement_delay_days,
            notification_required=notification_required(
                RiskConclusion(row.risk_conclusion) if row.risk_conclusion else None,
                BreachStatus(row.status),
            ),
            discovered_on=row.discovered_at.date(),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


@strawberry.type
class BreachPayload:
    breach: BreachIncident = classified(PUBLIC)


@strawberry.type
class BreachNotificationPayload:
    notification: BreachNotification = classified(COMPLIANCE)
    breach: BreachIncident = classified(PUBLIC)
