"""Rules every string a caller sends must satisfy, whatever field it is for.

PostgreSQL cannot store a NUL character in text, and an unpaired UTF-16 surrogate is not
a character at all (it cannot be encoded as UTF-8): either would reach the database and
fail there, as an internal error. They are refused where input is parsed instead, once
for every string, with the field's name. Other control characters (tab, newline) are
legitimate in free text and stay allowed.

Nesting is bounded too: a JSON document nested thousands of levels deep exhausts a
recursive parser, and no input of this API needs more than a handful of levels.
"""

from __future__ import annotations

import re
from typing import Any

UNSAFE_TEXT_RULE = "must not contain NUL characters or unpaired surrogates"
MAX_NESTING = 32
NESTING_RULE = f"must not nest lists and objects more than {MAX_NESTING} levels deep"

_UNSAFE = re.compile("[\x00\ud800-\udfff]")


def is_unsafe_text(value: str) -> bool:
    return _UNSAFE.search(value) is not None


def nesting_depth(value: Any, limit: int = MAX_NESTING) -> int:
    """How deep lists and objects nest in a JSON-like value, counted up to ``limit + 1``
    (the caller only needs to know whether the limit is passed)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list | tuple):
            depth += 1
            if depth > limit:
                return depth
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth) for child in children)
    return deepest
