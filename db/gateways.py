"""Running gateway processes (phigate.gateway_instances): each records itself and the
key-encryption key versions it holds; key rotation reads them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from db.models import GatewayInstance

instances = GatewayInstance.__table__

HEARTBEAT_SECONDS = 5.0
# A gateway not seen for this long is gone (stopped, or killed without saying so).
LIVE_FOR = timedelta(seconds=HEARTBEAT_SECONDS * 4)


async def beat(
    engine: AsyncEngine, instance_id: uuid.UUID, *, host: str, pid: int, versions: Sequence[int]
) -> None:
    values = {
        "instance_id": instance_id,
        "host": host[:255],
        "pid": pid,
        "kek_versions": sorted(versions),
    }
    statement = insert(instances).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=[instances.c.instance_id],
        set_={
            "kek_versions": statement.excluded.kek_versions,
            "seen_at": datetime.now().astimezone(),
        },
    )
    async with engine.begin() as connection:
        await connection.execute(statement)


async def leave(engine: AsyncEngine, instance_id: uuid.UUID) -> None:
    async with engine.begin() as connection:
        await connection.execute(delete(instances).where(instances.c.instance_id == instance_id))


async def live(engine: AsyncEngine, *, now: datetime) -> Sequence[Row[Any]]:
    async with engine.connect() as connection:
        result = await connection.execute(
            select(instances).where(instances.c.seen_at > now - LIVE_FOR)
        )
        return result.all()
