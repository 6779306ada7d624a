"""The persisted-operation store."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from db.models import PersistedOperation

operations = PersistedOperation.__table__


async def document(engine: AsyncEngine, sha256: str) -> str | None:
    async with engine.connect() as connection:
        return await connection.scalar(
            select(operations.c.document).where(operations.c.sha256 == sha256)
        )


async def store(
    engine: AsyncEngine, sha256: str, text: str, *, source: str, registered_by: str | None
) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            insert(operations)
            .values(sha256=sha256, document=text, source=source, registered_by=registered_by)
            .on_conflict_do_nothing()
        )


async def listing(engine: AsyncEngine) -> list[dict[str, object]]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(operations.c.sha256, operations.c.source, operations.c.registered_at).order_by(
                operations.c.registered_at
            )
        )
        return [dict(row._mapping) for row in rows]


async def registered(engine: AsyncEngine) -> list[dict[str, str]]:
    """The documents an operator registered (`phigate operations register`), oldest
    first. Documents stored automatically, by hash, are other callers' queries."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(operations.c.sha256, operations.c.document)
            .where(operations.c.source == "REGISTERED")
            .order_by(operations.c.registered_at)
        )
        return [{"sha256": row.sha256, "document": row.document} for row in rows]
