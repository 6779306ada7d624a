"""Schema assembly."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.printer import print_schema
from strawberry.schema.config import StrawberryConfig

from graph.extensions.authorization import Authorization
from graph.extensions.safe_errors import SafeErrors
from graph.extensions.unit_of_work import UnitOfWork
from graph.mutations import Mutation
from graph.queries import Query
from graph.scalars import SCALAR_MAP


class PhigateSchema(strawberry.Schema):
    def process_errors(self, errors: Any, execution_context: Any = None) -> None:
        """Strawberry's default logs each error with its traceback and message, which can
        quote values. SafeErrors logs codes instead."""


def build_schema(*, enforce: bool = True) -> PhigateSchema:
    """The schema. ``enforce=False`` exists only so benchmarks can measure what
    enforcement costs; nothing serves it."""
    extensions: list[type] = (
        [SafeErrors, UnitOfWork, Authorization] if enforce else [SafeErrors, UnitOfWork]
    )
    return PhigateSchema(
        query=Query,
        mutation=Mutation,
        # Order matters: the first wraps the rest, so SafeErrors sees what UnitOfWork decided.
        extensions=extensions,
        config=StrawberryConfig(
            auto_camel_case=True,
            scalar_map=SCALAR_MAP,
            # "Did you mean ...?" hints map the schema for an attacker.
            disable_field_suggestions=True,
        ),
    )


schema = build_schema()


def schema_sdl() -> str:
    return print_schema(schema) + "\n"
