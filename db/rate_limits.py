"""A PostgreSQL storage for the `limits` library: the counting algorithm is theirs
(fixed window), the counters live in our database so every gateway process shares
them."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from limits.aio.storage import Storage
from sqlalchemy import delete, func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import autocommit
from db.models import RateLimitCounter

counters = RateLimitCounter.__table__

# One round trip: start a window, count into the current one, or restart an expired one.
# Sent to asyncpg as it is (prepared once per connection): on every caller's path, it
# does not need SQLAlchemy's compilation and result handling.
_INCREMENT = """
    INSERT INTO phigate.rate_limits AS c (key, hits, expires_at)
    VALUES ($1::varchar, $2::integer, now() + make_interval(secs => $3::float8))
    ON CONFLICT (key) DO UPDATE SET
        hits = CASE WHEN c.expires_at <= now() THEN EXCLUDED.hits ELSE c.hits + EXCLUDED.hits END,
        expires_at = CASE WHEN c.expires_at <= now() THEN EXCLUDED.expires_at ELSE c.expires_at END
    RETURNING hits
"""


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
            raw = await connection.get_raw_connection()
            try:
                hits = await raw.driver_connection.fetchval(  # type: ignore[union-attr]
                    _INCREMENT, key, amount, float(expiry)
                )
            except BaseException:
                # SQLAlchemy learns that a connection died from its own statements, not
                # from the driver's: one the database ended (a restart, a failover) would
                # go back to the pool and fail every later count.
                await connection.invalidate()
                raise
            return int(hits)

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


class LeasedStorage(Storage):
    """The shared counters, reserved a batch at a time: a process takes ``lease`` hits
    of a key's window from PostgreSQL in one increment and counts them off in memory,
    going back to the database only when they run out (or the window turns). The
    limiter's algorithm is still the `limits` library's; what it reads is the shared
    count at the last reservation plus the hits counted here since.

    Every process sees every other process's reservations, so the limit holds across the
    deployment; a reservation not used up before its window ends counts as spent, so a
    caller may be refused up to ``lease - 1`` hits early per other process (never late).
    The busiest path, one GraphQL request, then writes its counter once per ``lease``
    requests instead of every time."""

    STORAGE_SCHEME = None

    def __init__(self, shared: PostgresStorage, lease: int = 10) -> None:
        super().__init__(wrap_exceptions=False)
        self._shared = shared
        self._lease = lease
        # key -> [window end (monotonic seconds), shared count at the reservation,
        #         hits reserved, hits counted here]
        self._windows: dict[str, list[float]] = {}

    @property
    def base_exceptions(self) -> type[Exception]:
        return self._shared.base_exceptions

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.monotonic()
        window = self._windows.get(key)
        if window is None or window[0] <= now or window[3] + amount > window[2]:
            reserve = max(self._lease, amount)
            total = await self._shared.incr(key, expiry, reserve)
            if window is None or window[0] <= now or total <= reserve:
                # A new window (here or in the database): this reservation starts it.
                window = self._windows[key] = [now + expiry, total - reserve, reserve, 0]
                if len(self._windows) > MAX_LEASED_KEYS:
                    self._forget_expired(now)
            else:
                window[1], window[2], window[3] = total - reserve, reserve, 0
        window[3] += amount
        return int(window[1] + window[3])

    def _forget_expired(self, now: float) -> None:
        for key in [k for k, w in self._windows.items() if w[0] <= now]:
            del self._windows[key]

    async def get(self, key: str) -> int:
        window = self._windows.get(key)
        if window is not None and window[0] > time.monotonic():
            return int(window[1] + window[3])
        return await self._shared.get(key)

    async def get_expiry(self, key: str) -> float:
        return await self._shared.get_expiry(key)

    async def check(self) -> bool:
        return await self._shared.check()

    async def reset(self) -> int | None:
        self._windows.clear()
        return await self._shared.reset()

    async def clear(self, key: str) -> None:
        self._windows.pop(key, None)
        await self._shared.clear(key)


MAX_LEASED_KEYS = 50_000
