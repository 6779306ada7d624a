"""An audit entry's digest is computed over the same bytes by every version of phigate:
the chain sealed by one build must verify under the next. The fast encoder is held to
the reference encoding (``json.dumps``, sorted keys, compact) over generated entries."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.audit import FIELDS, canonical_json, entry_digest

# The encoding as every sealed digest was computed until the fast encoder (2026-12-03).
REFERENCE = {"sort_keys": True, "separators": (",", ":")}


def reference_digest(entry: dict[str, Any]) -> str:
    def plain(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.astimezone(UTC).isoformat(timespec="microseconds")
        if isinstance(value, uuid.UUID):
            return str(value)
        return value

    content = {name: plain(entry.get(name)) for name in FIELDS}
    if entry.get("record_ids"):
        content["record_ids"] = [str(record) for record in entry["record_ids"]]
    if entry.get("break_glass_episode_id"):
        content["break_glass_episode_id"] = str(entry["break_glass_episode_id"])
    return hashlib.sha256(json.dumps(content, **REFERENCE).encode()).hexdigest()


SYNTHETIC = {
    "id": 42,
    "occurred_at": datetime(2026, 12, 3, 9, 30, 0, 123456, tzinfo=UTC),
    "category": "ACCESS",
    "action": "READ",
    "outcome": "ALLOWED",
    "actor_id": "user-synthetic-1",
    "actor_kind": "USER",
    "role": "BILLING",
    "session_id": uuid.UUID("00000000-0000-4000-8000-000000000001"),
    "purpose": "PAYMENT",
    "break_glass": False,
    "document_hash": "ab" * 32,
    "field_path": "Patient.givenName",
    "data_class": "IDENTITY",
    "client_ip": "127.0.0.1",
    "request_id": "req-1",
    "record_ids": [uuid.UUID(int=1), uuid.UUID(int=2)],
}


def test_the_digest_of_a_known_entry_has_not_changed() -> None:
    """Computed with the encoder before the fast one: a change of format would break
    every chain already sealed, and sealing and verifying with the same new function
    would not notice."""
    ascii_agent = {**SYNTHETIC, "user_agent": "Synthetic-Agent/1.0"}
    assert (
        entry_digest(ascii_agent)
        == "8f00efe07325cef965304e3ad4636458009784b06f3f4f715701f8e2b2cc1c28"
    )
    # Non-ASCII text, a line separator and DEL: the bytes json escapes and orjson would not.
    other_agent = {**SYNTHETIC, "user_agent": "Synthetic-Agent/1.0 \u00e9\u2028\x7f"}
    assert (
        entry_digest(other_agent)
        == "a61cb6ce6b88183536fee7e0b7aea85fab3ff8a97ec138a195736711d844dd54"
    )


# Every code point, surrogates included (a header decoded as latin-1 cannot hold them,
# but nothing upstream should have to guarantee it).
any_text = st.text(st.characters(exclude_categories=()), max_size=40)
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    any_text,
)


@settings(max_examples=400, deadline=None)
@given(
    content=st.dictionaries(st.sampled_from((*FIELDS, "record_ids")), values),
    listed=st.lists(any_text, max_size=5),
)
def test_the_fast_encoding_is_the_reference_encoding(
    content: dict[str, Any], listed: list[str]
) -> None:
    for shape in (content, {**content, "record_ids": listed}):
        assert canonical_json(shape) == json.dumps(shape, **REFERENCE).encode()


@settings(max_examples=200, deadline=None)
@given(
    entry=st.fixed_dictionaries(
        {},
        optional={
            "id": st.integers(min_value=1, max_value=2**63 - 1),
            "occurred_at": st.datetimes(
                min_value=datetime(2000, 1, 1), timezones=st.just(timezone(timedelta(hours=-5)))
            ),
            "session_id": st.uuids(),
            "break_glass": st.booleans(),
            "field_path": any_text,
            "user_agent": any_text,
            "record_ids": st.lists(st.uuids(), max_size=4),
            "break_glass_episode_id": st.uuids(),
        },
    )
)
def test_entry_digests_are_the_reference_digests(entry: dict[str, Any]) -> None:
    assert entry_digest(entry) == reference_digest(entry)
