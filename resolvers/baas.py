"""Business Associate Agreements: create, update (with field history), sign, expiry."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Row

from db import baas as repo
from domain.baas import BAA_LIFECYCLE, BaaStatus, activation_rule, covers, term_rule
from domain.errors import FieldViolation, InvalidInput, NotFound, Violations
from domain.patients import email_rule, text_rule
from resolvers.context import RequestContext
from resolvers.inputs import camel

INPUT_PATHS = {
    "vendor_name": "vendorName",
    "vendor_contact_name": "vendorContactName",
    "vendor_contact_email": "vendorContactEmail",
    "services": "services",
    "phi_categories": "phiCategories",
    "effective_date": "effectiveDate",
    "expiry_date": "expiryDate",
    "status": "status",
}
_SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_WINDOW_DAYS = 3650


def _check(values: Mapping[str, Any], violations: Violations) -> None:
    for column, value in values.items():
        path = f"input.{INPUT_PATHS[column]}"
        if column == "vendor_name":
            violations.check(
                path, "must not be null" if value is None else text_rule(value, max_length=200)
            )
        elif column == "vendor_contact_name" and value is not None:
            violations.check(path, text_rule(value, max_length=200))
        elif column == "vendor_contact_email" and value is not None:
            violations.check(path, email_rule(value))
        elif column == "services":
            if not value:
                violations.check(path, "must name at least one service")
            for index, service in enumerate(value or ()):
                violations.check(f"{path}[{index}]", text_rule(service, max_length=200))
        elif column in ("phi_categories", "status") and value is None:
            violations.check(path, "must not be null")


async def baa(ctx: RequestContext, baa_id: uuid.UUID, *, field: str = "id") -> Row[Any]:
    row = await repo.get_baa(ctx.db, baa_id)
    if row is None:
        raise NotFound("BAA", field)
    return row


async def expiring_baas(ctx: RequestContext, within_days: int) -> Sequence[Row[Any]]:
    if not 0 <= within_days <= MAX_WINDOW_DAYS:
        raise InvalidInput(
            [FieldViolation("withinDays", f"must be between 0 and {MAX_WINDOW_DAYS}")]
        )
    return await repo.expiring_baas(
        ctx.db,
        today=ctx.today,
        until=ctx.today + timedelta(days=within_days),
        statuses=[BaaStatus.ACTIVE.value],
    )


async def create_baa(ctx: RequestContext, values: Mapping[str, Any]) -> Row[Any]:
    violations = Violations()
    _check(values, violations)
    violations.check(
        "input.expiryDate", term_rule(values.get("effective_date"), values.get("expiry_date"))
    )
    violations.raise_if_any()
    return await repo.insert_baa(
        ctx.db,
        {
            **values,
            "status": BaaStatus.DRAFT.value,
            "created_by": ctx.actor_id,
            "created_at": ctx.now,
            "updated_at": ctx.now,
        },
    )


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)


async def _apply(ctx: RequestContext, current: Row[Any], changes: Mapping[str, Any]) -> Row[Any]:
    """Write the changed fields and one history row per field that really changed."""
    changed = {key: value for key, value in changes.items() if getattr(current, key) != value}
    if not changed:
        return current
    updated = await repo.update_baa(ctx.db, current.id, changed, now=ctx.now)
    if updated is None:
        raise NotFound("BAA", "input.id")
    await repo.insert_changes(
        ctx.db,
        [
            {
                "baa_id": current.id,
                "field": camel(key),
                "old_value": _as_text(getattr(current, key)),
                "new_value": _as_text(value),
                "changed_by": ctx.actor_id,
                "changed_at": ctx.now,
            }
            for key, value in changed.items()
        ],
    )
    return updated


async def update_baa(
    ctx: RequestContext, baa_id: uuid.UUID, changes: Mapping[str, Any]
) -> Row[Any]:
    current = await baa(ctx, baa_id, field="input.id")
    violations = Violations()
    _check(changes, violations)
    effective = changes.get("effective_date", current.effective_date)
    expiry = changes.get("expiry_date", current.expiry_date)
    violations.check("input.expiryDate", term_rule(effective, expiry))
    target = changes.get("status")
    if target is not None:
        if target == BaaStatus.ACTIVE.value:
            violations.check("input.status", "becomes ACTIVE only by signing (baaSign)")
        elif target != current.status:
            BAA_LIFECYCLE.require(BaaStatus(current.status), BaaStatus(target))
    violations.raise_if_any()
    return await _apply(ctx, current, changes)


async def sign_baa(
    ctx: RequestContext,
    baa_id: uuid.UUID,
    *,
    signed_by: str,
    signed_at: datetime | None,
    document_sha256: str,
) -> Row[Any]:
    current = await baa(ctx, baa_id, field="input.id")
    violations = Violations()
    violations.check("input.signedBy", text_rule(signed_by, max_length=200))
    violations.check(
        "input.documentSha256",
        None
        if _SHA256.fullmatch(document_sha256)
        else "must be 64 lower-case hex digits (SHA-256)",
    )
    if signed_at is not None and signed_at > ctx.now:
        violations.check("input.signedAt", "must not be in the future")
    if current.effective_date is None or current.expiry_date is None:
        violations.check(
            "input.id", "names a BAA without an effective and expiry date; set them first"
        )
    else:
        violations.check("expiryDate", activation_rule(current.expiry_date, today=ctx.now.date()))
    violations.raise_if_any()
    BAA_LIFECYCLE.require(BaaStatus(current.status), BaaStatus.ACTIVE)
    return await _apply(
        ctx,
        current,
        {
            "status": BaaStatus.ACTIVE.value,
            "signed_by": signed_by,
            "signed_at": signed_at or ctx.now,
            "document_sha256": document_sha256,
        },
    )


async def register_service(ctx: RequestContext, values: Mapping[str, Any]) -> Row[Any]:
    violations = Violations()
    violations.check("input.name", text_rule(values["name"], max_length=200))
    violations.check("input.vendorName", text_rule(values["vendor_name"], max_length=200))
    if values.get("description") is not None:
        violations.check("input.description", text_rule(values["description"], max_length=2000))
    if not values["phi_categories"]:
        violations.check("input.phiCategories", "must name at least one category of PHI")
    violations.raise_if_any()
    return await repo.insert_service(
        ctx.db, {**values, "id": uuid.uuid4(), "created_by": ctx.actor_id, "created_at": ctx.now}
    )


async def services_and_cover(
    ctx: RequestContext, *, uncovered_only: bool
) -> list[tuple[Row[Any], uuid.UUID | None]]:
    """Every registered PHI service with the active BAA that covers it, if any."""
    agreements = await repo.active_baas(ctx.db)
    found = []
    for service in await repo.list_services(ctx.db):
        cover = next(
            (
                agreement.id
                for agreement in agreements
                if covers(
                    status=BaaStatus(agreement.status),
                    vendor_name=agreement.vendor_name,
                    services=list(agreement.services),
                    expiry=agreement.expiry_date,
                    service_vendor=service.vendor_name,
                    service_name=service.name,
                    today=ctx.today,
                )
            ),
            None,
        )
        if cover is None or not uncovered_only:
            found.append((service, cover))
    return found


async def verify_document(ctx: RequestContext, baa_id: uuid.UUID, presented: str) -> str | None:
    """The SHA-256 recorded at signing (None if never signed); the caller compares."""
    current = await baa(ctx, baa_id, field="input.id")
    if not _SHA256.fullmatch(presented):
        raise InvalidInput(
            [FieldViolation("input.documentSha256", "must be 64 lower-case hex digits (SHA-256)")]
        )
    ctx.trail.note("BAA_DOCUMENT_VERIFIED", "Baa.documentSha256", str(baa_id))
    return current.document_sha256
