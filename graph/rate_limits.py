"""Rate limits per client address, per account and per caller, counted in PostgreSQL
with the `limits` library's fixed-window strategy."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import FixedWindowRateLimiter
from sqlalchemy.ext.asyncio import AsyncEngine

from db.rate_limits import PostgresStorage
from graph.settings import Settings


@dataclass(frozen=True)
class RateLimits:
    limiter: FixedWindowRateLimiter
    login: RateLimitItem
    token: RateLimitItem
    graphql: RateLimitItem
    # Requests without a valid token, per client address, counted in this process's
    # memory: a flood of them must not become a flood of database writes.
    anonymous_limiter: FixedWindowRateLimiter
    anonymous: RateLimitItem

    @classmethod
    def from_settings(cls, settings: Settings, engine: AsyncEngine) -> RateLimits:
        return cls(
            limiter=FixedWindowRateLimiter(PostgresStorage(engine)),
            login=parse(settings.rate_limit_login),
            token=parse(settings.rate_limit_token),
            graphql=parse(settings.rate_limit_graphql),
            anonymous_limiter=FixedWindowRateLimiter(MemoryStorage()),
            anonymous=parse(settings.rate_limit_anonymous),
        )

    async def anonymous_retry_after(self, address: str) -> int | None:
        """Count an unauthenticated request from an address; None while under the limit."""
        if await self.anonymous_limiter.hit(self.anonymous, "anonymous", address):
            return None
        stats = await self.anonymous_limiter.get_window_stats(self.anonymous, "anonymous", address)
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def retry_after(
        self, item: RateLimitItem, *identifiers: str, cost: int = 1
    ) -> int | None:
        """Count a hit; None when allowed, else seconds until the window resets."""
        if await self.limiter.hit(item, *identifiers, cost=cost):
            return None
        stats = await self.limiter.get_window_stats(item, *identifiers)
        return max(1, math.ceil(stats.reset_time - time.time()))
