"""Helpers shared by resolvers for ids, cursors and partial inputs."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Row

from domain.errors import FieldViolation, InvalidInput
from resolvers.context import PageLimits


def parse_id(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidInput([FieldViolation(field, "must be an id returned by this API")]) from None


def parse_ids(values: Sequence[str], field: str) -> list[uuid.UUID]:
    return [parse_id(value, f"{field}[{index}]") for index, value in enumerate(values)]


def page_size(first: int | None, limits: PageLimits, field: str = "first") -> int:
    size = limits.default if first is None else first
    if not 1 <= size <= limits.maximum:
        raise InvalidInput([FieldViolation(field, f"must be between 1 and {limits.maximum}")])
    return size


_CURSOR_VERSION = "c1"


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    raw = f"{_CURSOR_VERSION}|{created_at.isoformat()}|{row_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, field: str = "after") -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        version, stamp, row_id = base64.urlsafe_b64decode(padded).decode().split("|")
        if version != _CURSOR_VERSION:
            raise ValueError
        return datetime.fromisoformat(stamp), uuid.UUID(row_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput(
            [FieldViolation(field, "must be a cursor returned by this API")]
        ) from None


@dataclass(frozen=True, slots=True)
class Page:
    rows: Sequence[Row[Any]]
    has_next_page: bool

    @property
    def end_cursor(self) -> str | None:
        if not self.rows:
            return None
        last = self.rows[-1]
        return encode_cursor(last.created_at, last.id)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
