from __future__ import annotations

from datetime import date, datetime
from typing import Any

import strawberry

from domain.data_classes import DataClass
from domain.errors import FieldViolation, InvalidInput
from graph.directives import PhiCategory, classified
from graph.types.common import enum_value, provided
from graph.types.enums import (
    BreachStatus,
    NotificationMethod,
    NotificationRecipient,
    RiskConclusion,
)

COMPLIANCE = DataClass.COMPLIANCE
PUBLIC = DataClass.PUBLIC
UNSET: Any = strawberry.UNSET

_COLUMNS = {
    "title": "title",
    "description": "description",
    "discovered_at": "discovered_at",
    "occurred_at": "occurred_at",
    "affected_count": "affected_count",
    "phi_categories": "phi_categories",
    "root_cause": "root_cause",
    "remediation_actions": "remediation_actions",
    "law_enforcement_delay_days": "law_enforcement_delay_days",
}
_RISK_COLUMNS = {
    "nature_and_extent": "risk_nature_and_extent",
    "unauthorized_recipient": "risk_unauthorized_recipient",
    "acquired_or_viewed": "risk_acquired_or_viewed",
    "mitigation": "risk_mitigation",
    "conclusion": "risk_conclusion",
}


@strawberry.input
class JurisdictionCountInput:
    jurisdiction: str = classified(COMPLIANCE, description="USPS state or territory code.")
    affected_count: int = classified(COMPLIANCE)


def jurisdiction_counts(
    items: list[JurisdictionCountInput] | None, field: str = "input.jurisdictions"
) -> dict[str, int] | None:
    if items is None or items is UNSET:
        return None
    counts: dict[str, int] = {}
    for item in items:
        if item.jurisdiction in counts:
            raise InvalidInput([FieldViolation(field, "must list each jurisdiction once")])
        counts[item.jurisdiction] = item.affected_count
    return counts


def _columns(source: Any) -> dict[str, Any]:
    values = provided(source, _COLUMNS)
    if values.get("phi_categories") is not None:
        values["phi_categories"] = sorted({enum_value(c) for c in values["phi_categories"]})
    if "remediation_actions" in values and values["remediation_actions"] is None:
        values["remediation_actions"] = []
    return values


@strawberry.input
class BreachReportInput:
    title: str = classified(COMPLIANCE)
    discovered_at: datetime = classified(COMPLIANCE)
    phi_categories: list[PhiCategory] = classified(COMPLIANCE)
    description: str | None = classified(COMPLIANCE, default=None)
    occurred_at: datetime | None = classified(COMPLIANCE, default=None)
    affected_patient_ids: list[strawberry.ID] = classified(PUBLIC, default_factory=list)
    affected_count: int | None = classified(
        COMPLIANCE, default=None, description="Defaults to the number of affectedPatientIds."
    )
    jurisdictions: list[JurisdictionCountInput] | None = classified(
        COMPLIANCE,
        default=None,
        description="Defaults to the states in the affected patients' addresses.",
    )
    root_cause: str | None = classified(COMPLIANCE, default=None)
    remediation_actions: list[str] = classified(COMPLIANCE, default_factory=list)

    def to_values(self) -> dict[str, Any]:
        return _columns(self)


@strawberry.input(description="Only the fields given are changed.")
class RiskAssessmentInput:
    nature_and_extent: str | None = classified(COMPLIANCE, default=UNSET)
    unauthorized_recipient: str | None = classified(COMPLIANCE, default=UNSET)
    acquired_or_viewed: str | None = classified(COMPLIANCE, default=UNSET)
    mitigation: str | None = classified(COMPLIANCE, default=UNSET)
    conclusion: RiskConclusion | None = classified(COMPLIANCE, default=UNSET)


@strawberry.input(description="Only the fields given are changed.")
class BreachUpdateInput:
    id: strawberry.ID = classified(PUBLIC)
    status: BreachStatus | None = classified(COMPLIANCE, default=UNSET)
    title: str | None = classified(COMPLIANCE, default=UNSET)
    description: str | None = classified(COMPLIANCE, default=UNSET)
    discovered_at: datetime | None = classified(COMPLIANCE, default=UNSET)
    occurred_at: datetime | None = classified(COMPLIANCE, default=UNSET)
    affected_count: int | None = classified(COMPLIANCE, default=UNSET)
    phi_categories: list[PhiCategory] | None = classified(COMPLIANCE, default=UNSET)
    root_cause: str | None = classified(COMPLIANCE, default=UNSET)
    remediation_actions: list[str] | None = classified(COMPLIANCE, default=UNSET)
    law_enforcement_delay_days: int | None = classified(
        COMPLIANCE,
        default=UNSET,
        description="A delay law enforcement asked for (45 CFR 164.412), 1 to 365 days;"
        " every notification deadline moves back by it. Null clears it.",
    )
    risk_assessment: RiskAssessmentInput | None = classified(COMPLIANCE, default=UNSET)
    add_affected_patient_ids: list[strawberry.ID] = classified(PUBLIC, default_factory=list)
    jurisdictions: list[JurisdictionCountInput] | None = classified(
        COMPLIANCE, default=UNSET, description="Replaces the counts per jurisdiction."
    )

    def to_values(self) -> dict[str, Any]:
        values = _columns(self)
        if self.status is not UNSET:
            values["status"] = enum_value(self.status)
        if self.risk_assessment is not UNSET and self.risk_assessment is not None:
            risk = provided(self.risk_assessment, _RISK_COLUMNS)
            if "risk_conclusion" in risk:
                risk["risk_conclusion"] = enum_value(risk["risk_conclusion"])
            values.update(risk)
        return values


@strawberry.input
class BreachNotificationInput:
    breach_id: strawberry.ID = classified(PUBLIC)
    recipient: NotificationRecipient = classified(COMPLIANCE)
    method: NotificationMethod = classified(COMPLIANCE)
    sent_on: date = classified(COMPLIANCE)
