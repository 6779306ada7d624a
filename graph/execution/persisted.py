"""Persisted operations: documents registered ahead of time and run by their SHA-256
(`extensions.persistedQuery.sha256Hash`, the Apollo protocol, so GETs stay short and
cacheable). In strict mode a caller may run only registered documents, unless its role
may explore ad hoc (analysts in GraphiQL, by default); otherwise unknown documents sent
with their hash are remembered (automatic persisted queries)."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry.http import GraphQLRequestData

from db import operations as store
from domain.principals import Human, Principal
from domain.roles import Role

_SHA256 = re.compile(r"[0-9a-f]{64}")
CACHE_LIMIT = 10_000


class OperationsMode(StrEnum):
    OPEN = "open"
    STRICT = "strict"


class Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class PersistedOperations:
    engine: AsyncEngine
    mode: OperationsMode
    adhoc_roles: frozenset[Role]
    _cache: dict[str, str] = field(default_factory=dict)

    async def _known(self, sha256: str) -> str | None:
        if sha256 in self._cache:
            return self._cache[sha256]
        text = await store.document(self.engine, sha256)
        if text is not None:
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
            self._cache[sha256] = text
        return text

    def _may_explore(self, principal: Principal | None) -> bool:
        return isinstance(principal, Human) and principal.role in self.adhoc_roles

    async def resolve(
        self, request: GraphQLRequestData, principal: Principal | None
    ) -> GraphQLRequestData:
        """The request with its document, or Refused."""
        persisted = (request.extensions or {}).get("persistedQuery")
        if persisted is not None:
            sha256 = persisted.get("sha256Hash") if isinstance(persisted, dict) else None
            if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
                raise Refused(
                    "BAD_USER_INPUT",
                    "extensions.persistedQuery.sha256Hash must be 64 lower-case hex digits",
                )
            known = await self._known(sha256)
            if request.query is None:
                if known is None:
                    # Apollo clients retry with the full text on this exact message.
                    raise Refused("PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound")
                return dataclasses.replace(request, query=known)
            if digest(request.query) != sha256:
                raise Refused(
                    "BAD_USER_INPUT",
                    "extensions.persistedQuery.sha256Hash does not match the query",
                )
            if known is None:
                if self.mode is OperationsMode.STRICT and not self._may_explore(principal):
                    raise Refused(
                        "PERSISTED_QUERY_REQUIRED",
                        "Only registered operations may run here (phigate operations register).",
                    )
                await store.store(
                    self.engine, sha256, request.query, source="AUTOMATIC", registered_by=None
                )
            return request
        if (
            self.mode is OperationsMode.STRICT
            and request.query is not None
            and not self._may_explore(principal)
            and await self._known(digest(request.query)) is None
        ):
            raise Refused(
                "PERSISTED_QUERY_REQUIRED",
                "Only registered operations may run here (phigate operations register).",
            )
        return request
