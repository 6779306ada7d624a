"""A PostgreSQL storage for the `limits` library: the counting algorithm is theirs
(fixed window), the counters live in our database so every gateway process shares
them."""

from __future__ import annotations

from datetime import UTC, datetime

from limits.aio.storage import Storage
from sqlalchemy import delete, func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import autocommit
from db.models import RateLimitCounter

counters = RateLimitCounter.__table__

# One round trip: start a window, count into the current one, or restart an expired one.
_INCREMENT = text(
    """
    INSERT INTO phigate.rate_limits AS c (key, hits, expires_at)
    VALUES (:key, :amount, now() + make_interval(secs => :expiry))
    ON CONFLICT (key) DO UPDATE SET
        hits = CASE WHEN c.expires_at <= now() THEN EXCLUDED.hits ELSE c.hits + EXCLUDED.hits END,
        expires_at = CASE WHEN c.expires_at <= now() THEN EXCLUDED.expires_at ELSE c.expires_at END
    RETURNING hits
    """
)


class PostgresStorage(Storage):
    STORAGE_SCHEME = None  # built from an engine, not from a URI

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(wrap_exceptions=False)
        self._engine = engine
        # The increment is one atomic statement: no BEGIN and COMMIT round trips.
        self._autocommit = autocommit(engine)

    @property
    def base_exceptions(self) -> type[Exception]:
        return SQLAlchemyError

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        async with self._autocommit.connect() as connection:
            result = await connection.execute(
                _INCREMENT, {"key": key, "amount": amount, "expiry": expiry}
            )
            return int(result.scalar_one())

    async def get(self, key: str) -> int:
        async with self._engine.connect() as connection:
            hits = await connection.scalar(
                select(counters.c.hits).where(
                    counters.c.key == key, counters.c.expires_at > func.now()
                )
            )
        return int(hits or 0)

    async def get_expiry(self, key: str) -> float:
        async with self._engine.connect() as connection:
            expires = await connection.scalar(
                select(counters.c.expires_at).where(counters.c.key == key)
            )
        return (expires or datetime.now(UTC)).timestamp()

    async def check(self) -> bool:
        async with self._engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return True

    async def reset(self) -> int | None:
        async with self._engine.begin() as connection:
            result = await connection.execute(delete(counters))
        return result.rowcount

    async def clear(self, key: str) -> None:
        async with self._engine.begin() as connection:
            await connection.execute(delete(counters).where(counters.c.key == key))

    async def purge_expired(self) -> int:
        async with self._engine.begin() as connection:
            result = await connection.execute(
                delete(counters).where(counters.c.expires_at <= func.now())
            )
        return result.rowcount
