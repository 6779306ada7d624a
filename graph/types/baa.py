from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

import strawberry
from sqlalchemy.engine import Row

from domain.data_classes import DataClass
from graph.directives import PhiCategory, classified
from graph.types.common import GraphInfo, provided
from graph.types.enums import BaaStatus

COMPLIANCE = DataClass.COMPLIANCE
PUBLIC = DataClass.PUBLIC
UNSET: Any = strawberry.UNSET


@strawberry.type(description="One changed field of a BAA.")
class BaaChange:
    field: str = classified(COMPLIANCE)
    old_value: str | None = classified(COMPLIANCE)
    new_value: str | None = classified(COMPLIANCE)
    changed_at: datetime = classified(COMPLIANCE)

    @classmethod
    def from_row(cls, row: Row[Any]) -> BaaChange:
        return cls(
            field=row.field,
            old_value=row.old_value,
            new_value=row.new_value,
            changed_at=row.changed_at,
        )


@strawberry.type(description="A Business Associate Agreement with a vendor that handles PHI.")
class Baa:
    row_id: strawberry.Private[uuid.UUID]
    id: strawberry.ID = classified(PUBLIC)
    vendor_name: str = classified(COMPLIANCE)
    vendor_contact_name: str | None = classified(COMPLIANCE)
    vendor_contact_email: str | None = classified(COMPLIANCE)
    services: list[str] = classified(COMPLIANCE)
    phi_categories: list[PhiCategory] = classified(
        COMPLIANCE, description="PHI the vendor may handle."
    )
    status: BaaStatus = classified(COMPLIANCE)
    effective_date: date | None = classified(COMPLIANCE)
    expiry_date: date | None = classified(COMPLIANCE)
    signed_by: str | None = classified(COMPLIANCE)
    signed_at: datetime | None = classified(COMPLIANCE)
    document_sha256: str | None = classified(COMPLIANCE)
    created_at: datetime = classified(COMPLIANCE)
    updated_at: datetime = classified(COMPLIANCE)

    @classified(COMPLIANCE, description="Every change to this agreement, oldest first.")
    async def history(self, info: GraphInfo) -> list[BaaChange]:
        return [
            BaaChange.from_row(row)
            for row in await info.context.loaders.baa_changes.load(self.row_id)
        ]

    @classmethod
    def from_row(cls, row: Row[Any]) -> Baa:
        return cls(
            row_id=row.id,
            id=strawberry.ID(str(row.id)),
            vendor_name=row.vendor_name,
            vendor_contact_name=row.vendor_contact_name,
            vendor_contact_email=row.vendor_contact_email,
            services=list(row.services),
            phi_categories=[PhiCategory(value) for value in row.phi_categories],
            status=BaaStatus(row.status),
            effective_date=row.effective_date,
            expiry_date=row.expiry_date,
            signed_by=row.signed_by,
            signed_at=row.signed_at,
            document_sha256=row.document_sha256,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


@strawberry.type
class BaaPayload:
    baa: Baa = classified(PUBLIC)


_BAA_COLUMNS = {
    "vendor_name": "vendor_name",
    "vendor_contact_name": "vendor_contact_name",
    "vendor_contact_email": "vendor_contact_email",
    "services": "services",
    "phi_categories": "phi_categories",
    "effective_date": "effective_date",
    "expiry_date": "expiry_date",
}


def _columns(source: Any) -> dict[str, Any]:
    values = provided(
        source, {**_BAA_COLUMNS, "status": "status"} if hasattr(source, "status") else _BAA_COLUMNS
    )
    for key in ("phi_categories",):
        if values.get(key) is not None:
            values[key] = sorted({category.value for category in values[key]})
    if values.get("status") is not None:
        values["status"] = values["status"].value
    return values


@strawberry.input
class BaaCreateInput:
    vendor_name: str = classified(COMPLIANCE)
    services: list[str] = classified(COMPLIANCE)
    phi_categories: list[PhiCategory] = classified(COMPLIANCE)
    vendor_contact_name: str | None = classified(COMPLIANCE, default=None)
    vendor_contact_email: str | None = classified(COMPLIANCE, default=None)
    effective_date: date | None = classified(COMPLIANCE, default=None)
    expiry_date: date | None = classified(COMPLIANCE, default=None)

    def to_values(self) -> dict[str, Any]:
        return _columns(self)


@strawberry.input(description="Only the fields given are changed.")
class BaaUpdateInput:
    id: strawberry.ID = classified(PUBLIC)
    vendor_name: str | None = classified(COMPLIANCE, default=UNSET)
    services: list[str] | None = classified(COMPLIANCE, default=UNSET)
    phi_categories: list[PhiCategory] | None = classified(COMPLIANCE, default=UNSET)
    vendor_contact_name: str | None = classified(COMPLIANCE, default=UNSET)
    vendor_contact_email: str | None = classified(COMPLIANCE, default=UNSET)
    effective_date: date | None = classified(COMPLIANCE, default=UNSET)
    expiry_date: date | None = classified(COMPLIANCE, default=UNSET)
    status: BaaStatus | None = classified(
        COMPLIANCE,
        default=UNSET,
        description="DRAFT, SENT, EXPIRED or TERMINATED; ACTIVE comes from baaSign.",
    )

    def to_values(self) -> dict[str, Any]:
        return _columns(self)


@strawberry.input(description="Give the signed document (base64) or its SHA-256, not both.")
class BaaSignInput:
    id: strawberry.ID = classified(PUBLIC)
    signed_by: str = classified(COMPLIANCE)
    signed_at: datetime | None = classified(COMPLIANCE, default=None)
    document_base64: str | None = classified(COMPLIANCE, default=None)
    document_sha256: str | None = classified(COMPLIANCE, default=None)


@strawberry.input(
    description="A document to hold against the one recorded when the BAA was signed."
)
class BaaDocumentInput:
    id: strawberry.ID = classified(PUBLIC)
    document_base64: str | None = classified(COMPLIANCE, default=None)
    document_sha256: str | None = classified(COMPLIANCE, default=None)


@strawberry.type
class BaaDocumentCheck:
    matches: bool = classified(
        COMPLIANCE, description="True only if the BAA was signed and the hashes are equal."
    )
    presented_sha256: str = classified(COMPLIANCE)
    signed_sha256: str | None = classified(COMPLIANCE, description="Null if never signed.")


@strawberry.input(description="A service that creates, receives, keeps or sends PHI.")
class PhiServiceInput:
    name: str = classified(COMPLIANCE)
    vendor_name: str = classified(COMPLIANCE)
    phi_categories: list[PhiCategory] = classified(COMPLIANCE)
    description: str | None = classified(COMPLIANCE, default=None)


@strawberry.type(description="A registered PHI service, and the active BAA covering it, if any.")
class PhiService:
    id: strawberry.ID = classified(PUBLIC)
    name: str = classified(COMPLIANCE)
    vendor_name: str = classified(COMPLIANCE)
    description: str | None = classified(COMPLIANCE)
    phi_categories: list[PhiCategory] = classified(COMPLIANCE)
    covering_baa_id: strawberry.ID | None = classified(
        COMPLIANCE, description="An ACTIVE, unexpired BAA with this vendor naming this service."
    )

    @classmethod
    def from_row(cls, row: Row[Any], cover: uuid.UUID | None) -> PhiService:
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            vendor_name=row.vendor_name,
            description=row.description,
            phi_categories=[PhiCategory(c) for c in row.phi_categories],
            covering_baa_id=strawberry.ID(str(cover)) if cover else None,
        )


@strawberry.type
class PhiServicePayload:
    service: PhiService = classified(PUBLIC)
