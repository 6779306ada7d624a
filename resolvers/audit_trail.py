"""The request's audit trail: which records were returned where, joined at the end of
the request with the PHI fields the (already decided) operation reads there. No work
per field, no I/O until the one INSERT that the unit of work makes."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from operator import attrgetter
from typing import Any

from domain.audit import document_hash
from domain.authorization import Decision
from domain.principals import Human
from domain.purposes import Purpose


class AuditTrail:
    def __init__(self) -> None:
        self._read: dict[str, set[uuid.UUID]] = defaultdict(set)
        self._written: dict[str, set[uuid.UUID]] = defaultdict(set)
        self._notes: list[tuple[str, str, str | None]] = []
        self._deleted: list[tuple[str, uuid.UUID, str]] = []

    def returned(self, path: str, record_ids: Iterable[uuid.UUID | str]) -> None:
        """Patient records returned at a response path ("patients.edges.node")."""
        self._read[path].update(map(_as_uuid, record_ids))

    def wrote(self, path: str, record_id: uuid.UUID | str) -> None:
        """A patient record written by the mutation at a response path ("patientUpdate")."""
        self._written[path].add(_as_uuid(record_id))

    def deleted(self, coordinate: str, record_id: uuid.UUID | str, reason: str) -> None:
        """A record about to be hard-deleted: recorded in the same transaction as the
        DELETE, so neither is durable without the other."""
        self._deleted.append((coordinate, _as_uuid(record_id), reason))

    def note(self, action: str, field_path: str, record_id: str | None = None) -> None:
        """Any other access worth recording: a query of the audit trail itself."""
        self._notes.append((action, field_path, record_id))

    @property
    def empty(self) -> bool:
        """Nothing returned, written, deleted or noted: a request that succeeded has no
        entry to write (one that failed still records its attempts: see ``entries``)."""
        return not (
            self._notes or self._deleted or any(self._read.values()) or any(self._written.values())
        )

    def entries(
        self,
        *,
        base: dict[str, Any],
        decision: Decision | None,
        outcome: str,
        episodes: Mapping[uuid.UUID, uuid.UUID] | None = None,
    ) -> list[dict[str, Any]]:
        """The request's entries. A record reachable only through an open break-glass
        episode (``episodes``: patient -> episode) is recorded apart, as break-glass
        naming its episode, whatever purpose the request declared."""
        rows: list[dict[str, Any]] = [
            {
                **base,
                "action": action,
                "outcome": outcome,
                "field_path": field_path,
                "data_class": "AUDIT",
                "record_id": record_id,
            }
            for action, field_path, record_id in self._notes
        ]
        rows.extend(
            {
                **base,
                "action": "DELETE",
                "outcome": outcome,
                "field_path": coordinate,
                "record_ids": [record_id],
                "reason": reason,
            }
            for coordinate, record_id, reason in self._deleted
        )
        if decision is None or not decision.allowed or not decision.phi:
            return rows  # a refused request is recorded by its denials
        for access in decision.phi:
            sources = self._written if access.write else self._read
            records: set[uuid.UUID] = set()
            for prefix, record_ids in sources.items():
                if access.path.startswith(prefix + "."):
                    records |= record_ids
            if not records and outcome != "ERROR":
                continue  # nothing was returned there (an empty list, a null)
            # One row per field: a logical entry for each record in it (an ERROR with no
            # record is an attempt that failed before reaching one).
            entry = {
                **base,
                "action": "WRITE" if access.write else "READ",
                "outcome": outcome,
                "field_path": access.coordinate,
                "data_class": access.data_class,
            }
            through: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
            for record in records:
                episode = episodes.get(record) if episodes else None
                if episode is not None:
                    through[episode].append(record)
            ordinary = records.difference(*through.values()) if through else records
            if ordinary or not through:
                rows.append({**entry, "record_ids": sorted(ordinary, key=_ORDER)})
            rows.extend(
                {
                    **entry,
                    "break_glass": True,
                    "break_glass_episode_id": episode,
                    "record_ids": sorted(reached, key=_ORDER),
                }
                for episode, reached in sorted(through.items())
            )
        return _distinct(rows)


def _distinct(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (action, field, records, episode): the same input field written at
    two list positions is one entry per record. (Records are compared only between rows
    that agree on everything else: hashing a hundred ids per row costs more than the
    rest of the entries.)"""
    seen: dict[tuple[Any, ...], list[list[uuid.UUID]]] = {}
    kept = []
    for row in rows:
        key = (
            row.get("action"),
            row.get("field_path"),
            row.get("record_id"),
            row.get("break_glass_episode_id"),
            row.get("reason"),
        )
        records = row.get("record_ids") or []
        alike = seen.setdefault(key, [])
        if records not in alike:
            alike.append(records)
            kept.append(row)
    return kept


# The order of PostgreSQL's uuid (and of uuid.UUID), compared as C integers: sorting
# a page's ids with UUID.__lt__ costs a Python call per comparison.
_ORDER = attrgetter("int")


def _as_uuid(record_id: uuid.UUID | str) -> uuid.UUID:
    return record_id if isinstance(record_id, uuid.UUID) else uuid.UUID(record_id)


def entry_base(
    *,
    now: Any,
    principal: Any,
    purpose: Purpose | None,
    operation_name: str | None,
    query: str | None,
    meta: Any,
    digest: str | None = None,
) -> dict[str, Any]:
    """What every entry of one request shares: who, when, where, why. ``digest``: the
    query's SHA-256 when the caller has it already."""
    human = principal if isinstance(principal, Human) else None
    return {
        "occurred_at": now,
        "category": "ACCESS",
        "actor_id": principal.actor_id if principal is not None else None,
        "actor_kind": "USER" if human else ("SERVICE" if principal is not None else None),
        "role": human.role.value if human else None,
        "session_id": uuid.UUID(human.session_id) if human and human.session_id else None,
        "purpose": purpose.value if purpose else None,
        "break_glass": purpose is Purpose.EMERGENCY,
        "operation_name": operation_name[:200] if operation_name else None,
        "document_hash": digest or (document_hash(query) if query else None),
        "client_ip": meta.client_ip,
        "user_agent": meta.user_agent,
        "request_id": meta.request_id,
    }


def security_entry(
    request: Any,
    action: Any,
    outcome: Any,
    *,
    reason: str | None = None,
    field_path: str | None = None,
) -> dict[str, Any]:
    """A security event about a GraphQL request (a limit, the guard): who and where."""
    principal = request.principal
    human = principal if isinstance(principal, Human) else None
    return {
        "occurred_at": request.now,
        "category": "SECURITY",
        "action": action.value,
        "outcome": outcome.value,
        "actor_id": principal.actor_id if principal is not None else None,
        "actor_kind": "USER" if human else ("SERVICE" if principal is not None else None),
        "role": human.role.value if human else None,
        "session_id": uuid.UUID(human.session_id) if human and human.session_id else None,
        "purpose": request.purpose.value if request.purpose else None,
        "field_path": field_path,
        "reason": reason,
        "client_ip": request.meta.client_ip,
        "user_agent": request.meta.user_agent,
        "request_id": request.meta.request_id,
    }
