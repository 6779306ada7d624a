"""Writing the audit trail: many events, one statement."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import insert

from db.models import AuditEvent
from db.unit_of_work import RequestDatabase

events = AuditEvent.__table__


async def append(db: RequestDatabase, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        await db.execute(insert(events), list(rows))
