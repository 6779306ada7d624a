"""Rate limits per client address, per account and per caller, counted in PostgreSQL
with the `limits` library's fixed-window strategy."""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import FixedWindowRateLimiter
from sqlalchemy.ext.asyncio import AsyncEngine

from db.rate_limits import LeasedStorage, PostgresStorage
from graph.settings import Settings


@dataclass(frozen=True)
class RateLimits:
    limiter: FixedWindowRateLimiter
    # Per-caller GraphQL counting, on every request: reserved from the shared counters
    # in batches (see LeasedStorage); logins and tokens count exactly, each time.
    graphql_limiter: FixedWindowRateLimiter
    login: RateLimitItem
    token: RateLimitItem
    graphql: RateLimitItem
    # Requests without a valid token, per client address, counted in this process's
    # memory: a flood of them must not become a flood of database writes.
    anonymous_limiter: FixedWindowRateLimiter
    anonymous: RateLimitItem

    @classmethod
    def from_settings(cls, settings: Settings, engine: AsyncEngine) -> RateLimits:
        shared = PostgresStorage(engine)
        graphql = parse(settings.rate_limit_graphql)
        # A reservation is at most a twentieth of the limit: a caller is never refused
        # more than 5% early per other process (a limit of 8 a minute counts exactly).
        lease = min(settings.rate_limit_lease, max(1, graphql.amount // 20))
        return cls(
            limiter=FixedWindowRateLimiter(shared),
            graphql_limiter=FixedWindowRateLimiter(LeasedStorage(shared, lease=lease)),
            login=parse(settings.rate_limit_login),
            token=parse(settings.rate_limit_token),
            graphql=graphql,
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
        limiter = self.graphql_limiter if item is self.graphql else self.limiter
        identifiers = tuple(map(_bounded, identifiers))
        if await limiter.hit(item, *identifiers, cost=cost):
            return None
        stats = await limiter.get_window_stats(item, *identifiers)
        return max(1, math.ceil(stats.reset_time - time.time()))


MAX_IDENTIFIER = 64


def _bounded(identifier: str) -> str:
    """A counter's key part as sent is the caller's to choose (a client id before it is
    verified): past a real identifier's length it is counted by its digest, so no value
    can overflow the counter's key (a 180-character client id made /oauth/token answer
    503 instead of invalid_client)."""
    if len(identifier) <= MAX_IDENTIFIER:
        return identifier
    return "sha256:" + hashlib.sha256(identifier.encode()).hexdigest()
