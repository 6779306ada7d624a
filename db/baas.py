"""Business Associate Agreement queries."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Row

from db.models import Baa, BaaChange, PhiService
from db.unit_of_work import RequestDatabase

baas = Baa.__table__
services = PhiService.__table__
baa_changes = BaaChange.__table__


async def get_baa(db: RequestDatabase, baa_id: uuid.UUID) -> Row[Any] | None:
    return await db.first(select(baas).where(baas.c.id == baa_id))


async def list_baas(db: RequestDatabase, *, status: str | None = None) -> Sequence[Row[Any]]:
    query = select(baas).order_by(baas.c.vendor_name, baas.c.id)
    if status is not None:
        query = query.where(baas.c.status == status)
    return await db.rows(query)


async def expiring_baas(
    db: RequestDatabase, *, today: date, until: date, statuses: Sequence[str]
) -> Sequence[Row[Any]]:
    return await db.rows(
        select(baas)
        .where(baas.c.expiry_date.between(today, until), baas.c.status.in_(statuses))
        .order_by(baas.c.expiry_date, baas.c.id)
    )


async def insert_baa(db: RequestDatabase, values: Mapping[str, Any]) -> Row[Any]:
    row = await db.first(insert(baas).values(**values).returning(baas))
    assert row is not None
    return row


async def update_baa(
    db: RequestDatabase, baa_id: uuid.UUID, values: Mapping[str, Any], *, now: datetime
) -> Row[Any] | None:
    return await db.first(
        update(baas).where(baas.c.id == baa_id).values(**values, updated_at=now).returning(baas)
    )


async def insert_changes(db: RequestDatabase, changes: Iterable[Mapping[str, Any]]) -> None:
    values = list(changes)
    if values:
        await db.execute(insert(baa_changes), values)


async def changes_for(db: RequestDatabase, baa_ids: Sequence[uuid.UUID]) -> Sequence[Row[Any]]:
    return await db.rows(
        select(baa_changes)
        .where(baa_changes.c.baa_id.in_(baa_ids))
        .order_by(baa_changes.c.baa_id, baa_changes.c.changed_at, baa_changes.c.id)
    )


async def insert_service(db: RequestDatabase, values: Mapping[str, Any]) -> Row[Any]:
    return await db.first(insert(services).values(**values).returning(*services.c))  # type: ignore[return-value]


async def list_services(db: RequestDatabase) -> Sequence[Row[Any]]:
    return await db.rows(select(services).order_by(services.c.vendor_name, services.c.name))


async def active_baas(db: RequestDatabase) -> Sequence[Row[Any]]:
    return await db.rows(select(baas).where(baas.c.status == "ACTIVE"))
