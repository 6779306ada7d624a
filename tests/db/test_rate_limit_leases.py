"""Leased counting of the per-caller GraphQL limit: two processes (two storages on one
database) together never let a caller past the limit, and refuse it at most a lease
early per other process; the database is written once per lease."""

from __future__ import annotations

from limits import parse
from limits.aio.strategies import FixedWindowRateLimiter
from sqlalchemy.ext.asyncio import AsyncEngine

from db.rate_limits import LeasedStorage, PostgresStorage


async def test_two_processes_share_one_limit(app_engine: AsyncEngine) -> None:
    item = parse("100/minute")
    shared = PostgresStorage(app_engine)
    a = FixedWindowRateLimiter(LeasedStorage(shared, lease=5))
    b = FixedWindowRateLimiter(LeasedStorage(shared, lease=5))
    allowed = 0
    for n in range(200):
        limiter = a if n % 3 else b  # uneven: one process takes two hits in three
        allowed += await limiter.hit(item, "caller", "alice")
    assert 100 - 5 < allowed <= 100
    # Another caller's window is its own.
    assert await a.hit(item, "caller", "bob")


async def test_the_database_is_written_once_a_lease(app_engine: AsyncEngine) -> None:
    writes = 0
    shared = PostgresStorage(app_engine)
    original = shared.incr

    async def counted(key: str, expiry: int, amount: int = 1) -> int:
        nonlocal writes
        writes += 1
        return await original(key, expiry, amount)

    shared.incr = counted  # type: ignore[method-assign]
    limiter = FixedWindowRateLimiter(LeasedStorage(shared, lease=10))
    for _ in range(30):
        assert await limiter.hit(parse("600/minute"), "caller", "carol")
    assert writes == 3
