from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from db.engine import DatabaseTarget, create_engine
from db.migrate import include_object
from db.models import AuditBase, Base

target: DatabaseTarget = context.config.attributes["target"]


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=[Base.metadata, AuditBase.metadata],
        include_object=include_object,
        include_schemas=True,
        compare_type=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    engine = create_engine(target, pool_size=1, max_overflow=0, application_name="phigate-migrate")
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_migrations)
            await connection.commit()
    finally:
        await engine.dispose()


asyncio.run(run_async_migrations())
