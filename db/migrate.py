"""Run Alembic migrations from code: no alembic.ini to keep in step."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from db.crypto import FieldCipher
from db.engine import DatabaseTarget

MIGRATIONS = Path(__file__).parent / "migrations"


def include_object(
    obj: object, name: str | None, kind: str, reflected: bool, compare_to: object
) -> bool:
    """Audit partitions (and their indexes) are created by migrations and commands, not
    by the models: autogenerate must never propose dropping them."""
    table = obj if kind == "table" else getattr(obj, "table", None)
    schema = getattr(table, "schema", None)
    table_name = getattr(table, "name", "") or ""
    return not (schema == "audit" and table_name.startswith("events_"))


def alembic_config(target: DatabaseTarget, cipher: FieldCipher | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["target"] = target
    config.attributes["cipher"] = cipher
    return config


def upgrade(
    target: DatabaseTarget, revision: str = "head", *, cipher: FieldCipher | None = None
) -> None:
    """Migrate with the owner/administrator connection. Not callable from a running loop.
    The cipher is needed only by migrations that encrypt existing values."""
    command.upgrade(alembic_config(target, cipher), revision)


def head_revision() -> str | None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )
