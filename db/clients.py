"""OAuth2 clients (other services)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Row

from db.models import OAuthClient
from db.unit_of_work import RequestDatabase

clients = OAuthClient.__table__


async def get_client(db: RequestDatabase, client_id: str) -> Row[Any] | None:
    return await db.first(select(clients).where(clients.c.client_id == client_id))


async def active_scopes(db: RequestDatabase, client_id: str) -> list[str] | None:
    """The client's granted scopes while it is active; None once disabled or gone."""
    row = await db.first(
        select(clients.c.scopes).where(
            clients.c.client_id == client_id, clients.c.status == "ACTIVE"
        )
    )
    return list(row.scopes) if row else None


async def all_clients(db: RequestDatabase) -> Sequence[Row[Any]]:
    return await db.rows(select(clients).order_by(clients.c.created_at, clients.c.client_id))


async def set_values(
    db: RequestDatabase, client_id: str, values: Mapping[str, Any], *, now: datetime
) -> Row[Any] | None:
    return await db.first(
        update(clients)
        .where(clients.c.client_id == client_id)
        .values(**values, updated_at=now)
        .returning(clients)
    )


async def insert_client(db: RequestDatabase, values: Mapping[str, Any]) -> Row[Any]:
    row = await db.first(insert(clients).values(**values).returning(clients))
    assert row is not None
    return row
