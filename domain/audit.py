"""The audit trail's integrity rules: each entry's canonical digest, and the chain
that links digests in the order they were sealed."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

# HIPAA keeps required documentation six years (45 CFR 164.316(b)(2)); we default to
# seven, and never allow less than six.
MIN_AUDIT_RETENTION_DAYS = 2190
DEFAULT_AUDIT_RETENTION_DAYS = 2555
GENESIS = "0" * 64

# What an entry's digest covers: everything it says, including its id and time, so an
# altered, moved or re-dated entry no longer matches its link.
FIELDS = (
    "id", "occurred_at", "category", "action", "outcome", "actor_id", "actor_kind", "role",
    "session_id", "purpose", "break_glass", "operation_name", "document_hash", "field_path",
    "data_class", "record_id", "client_ip", "user_agent", "request_id", "reason", "subject_hash",
)  # fmt: skip


def plain(value: Any) -> Any:
    if value is None or type(value) is str:
        return value
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def canonical_json(content: Mapping[str, Any]) -> bytes:
    """``json.dumps(content, sort_keys=True, separators=(",", ":"))``, encoded: the
    bytes every digest in the chain was computed over, for what an entry's content
    holds (text, integers, booleans, None, lists of those). There orjson writes the same
    bytes whenever what it writes is ASCII without DEL: the two differ only on non-ASCII
    text, which json escapes and orjson does not, on DEL, which only json escapes, and
    on what orjson refuses (lone surrogates, integers beyond 64 bits); json writes
    those. Outside that domain they differ (floats, dates, enums, UUIDs), so the
    entry's values are made plain first (``plain``). A property test holds the two to
    the same bytes over the domain."""
    try:
        encoded = orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # orjson.JSONEncodeError
        encoded = b"\x7f"
    if encoded.isascii() and b"\x7f" not in encoded:
        return encoded
    return json.dumps(content, sort_keys=True, separators=(",", ":")).encode()


def entry_digest(entry: Mapping[str, Any]) -> str:
    return plain_digest(
        {name: plain(entry.get(name)) for name in FIELDS},
        entry.get("record_ids"),
        entry.get("break_glass_episode_id"),
    )


def plain_digest(content: dict[str, Any], record_ids: Any, episode_id: Any) -> str:
    """The digest of an entry whose ``FIELDS`` are in ``content`` already made ``plain``
    (``content`` is taken, not copied): what ``entry_digest`` computes, for a caller that
    knows which of its values need making plain (the sequencer, by column type)."""
    if record_ids:
        # Only when present: entries sealed before the column existed keep their digest.
        content["record_ids"] = [str(record) for record in record_ids]
    if episode_id:
        content["break_glass_episode_id"] = str(episode_id)
    return hashlib.sha256(canonical_json(content)).hexdigest()


def chain_link(previous: str, digest: str) -> str:
    return hashlib.sha256(f"{previous}{digest}".encode()).hexdigest()


def document_hash(query: str) -> str:
    # Total: a document is refused before it gets here if it holds a lone surrogate, and
    # the audit trail must not be the thing that fails if one ever does.
    return hashlib.sha256(query.encode("utf-8", "surrogatepass")).hexdigest()
