"""OAuth2 clients (other services)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import insert, select
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


async def insert_client(db: RequestDatabase, values: Mapping[str, Any]) -> Row[Any]:
    row = await db.first(insert(clients).values(**values).returning(clients))
    assert row is not None
    return row
