"""Per-request DataLoaders: every relation is fetched with one statement per level,
however many parents ask for it, and only within the caller's patient scope."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Coroutine, Sequence
from functools import partial
from typing import Any

from aiodataloader import DataLoader
from sqlalchemy.engine import Row

from db import audit_queries, baas, breaches, patients
from db.unit_of_work import RequestDatabase
from db.visibility import PatientScope

Fetch = Callable[[RequestDatabase, Sequence[uuid.UUID]], Coroutine[Any, Any, Sequence[Row[Any]]]]


class RowsByParent(DataLoader[uuid.UUID, list[Row[Any]]]):
    """Child rows grouped by the parent id found in ``parent_column``."""

    def __init__(self, db: RequestDatabase, fetch: Fetch, parent_column: str) -> None:
        super().__init__()
        self._db = db
        self._fetch = fetch
        self._parent_column = parent_column

    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[list[Row[Any]]]:
        grouped: dict[uuid.UUID, list[Row[Any]]] = defaultdict(list)
        for row in await self._fetch(self._db, list(keys)):
            grouped[getattr(row, self._parent_column)].append(row)
        return [grouped.get(key, []) for key in keys]


class EpisodeAccesses(DataLoader[uuid.UUID, int]):
    """Requests that went through each break-glass episode, from the audit trail."""

    def __init__(self, db: RequestDatabase) -> None:
        super().__init__()
        self._db = db

    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[int]:
        counts = await audit_queries.episode_accesses(self._db, list(keys))
        return [counts.get(key, 0) for key in keys]


class Loaders:
    def __init__(
        self,
        db: RequestDatabase,
        scope: PatientScope,
        audit_db: RequestDatabase | None = None,
        *,
        fields: frozenset[str] | None = None,
    ) -> None:
        self.episode_accesses = EpisodeAccesses(audit_db or db)
        self.diagnoses = RowsByParent(
            db, partial(patients.diagnoses_for, scope=scope, fields=fields), "patient_id"
        )
        self.consents = RowsByParent(db, partial(patients.consents_for, scope=scope), "patient_id")
        self.affected_patients = RowsByParent(
            db, partial(breaches.affected_patients_for, scope=scope, fields=fields), "breach_id"
        )
        self.jurisdictions = RowsByParent(db, breaches.jurisdictions_for, "breach_id")
        self.notifications = RowsByParent(db, breaches.notifications_for, "breach_id")
        self.baa_changes = RowsByParent(db, baas.changes_for, "baa_id")
