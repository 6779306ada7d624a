from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types.info import Info

from domain.data_classes import DataClass
from graph.directives import classified
from resolvers.context import RequestContext

GraphInfo = Info[RequestContext, None]


@strawberry.type(description="Where a page ends and whether another follows.")
class PageInfo:
    has_next_page: bool = classified(DataClass.PUBLIC)
    end_cursor: str | None = classified(
        DataClass.PUBLIC, description="Pass as `after` to fetch the next page."
    )


def response_path(info: GraphInfo, *suffix: str) -> str:
    """The response path of a field without list indices ("breaches.affectedPatients"):
    the same paths the authorization decision uses, so the audit trail can join them."""
    keys: list[str] = []
    path = info.path
    while path is not None:
        if isinstance(path.key, str):
            keys.append(path.key)
        path = path.prev
    return ".".join([*reversed(keys), *suffix])


def provided(source: Any, names: dict[str, str]) -> dict[str, Any]:
    """The input fields a caller actually sent, keyed by column: ``UNSET`` fields are
    left out, so partial updates touch only what was given (and audit says so)."""
    values: dict[str, Any] = {}
    for attribute, column in names.items():
        value = getattr(source, attribute, strawberry.UNSET)
        if value is not strawberry.UNSET:
            values[column] = value
    return values


def enum_value(value: Any) -> Any:
    return getattr(value, "value", value)
