"""Schema assembly."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import strawberry
from strawberry.extensions import ValidationCache
from strawberry.printer import print_schema
from strawberry.schema.config import StrawberryConfig

from domain.policy import PHI
from graph.enforcement import guard
from graph.execution.executor import GatewayExecutor, UnenforcedExecutor
from graph.extensions.caches import PARSE_CACHE_SIZE, ParseCache
from graph.extensions.limits import QueryLimitsExtension
from graph.extensions.safe_errors import SafeErrors
from graph.extensions.unit_of_work import UnauditedUnitOfWork, UnitOfWork
from graph.mutations import Mutation
from graph.queries import Query
from graph.scalars import SCALAR_MAP


class PhigateSchema(strawberry.Schema):
    def process_errors(self, errors: Any, execution_context: Any = None) -> None:
        """Strawberry's default logs each error with its traceback and message, which can
        quote values. SafeErrors logs codes instead."""


def build_schema(
    *, enforce: bool = True, audit: bool = True, observers: Sequence[Any] = ()
) -> PhigateSchema:
    """The schema. ``enforce=False`` and ``audit=False`` exist only so benchmarks can
    measure what enforcement and audit cost; nothing serves them. ``observers`` are
    extra extensions for tests that watch execution (what resolved, what was written).

    Minimum necessary is decided by the executor (graph/execution/executor.py) from the state it
    executes, and checked again by the guard (graph/enforcement/guard.py) where PHI is resolved."""
    unit_of_work = UnitOfWork if audit else UnauditedUnitOfWork
    extensions: list[Any] = [
        SafeErrors,
        # A repeated document is parsed and validated once (keys: its text; the document
        # and the rules), which is most of what a small query costs.
        ParseCache,
        lambda: ValidationCache(maxsize=PARSE_CACHE_SIZE),
        unit_of_work,
        QueryLimitsExtension,
        *observers,
    ]
    built = PhigateSchema(
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
        execution_context_class=GatewayExecutor if enforce else UnenforcedExecutor,
    )
    if enforce:
        guard.install(built._schema)
    return built


def _describe_classification(built: PhigateSchema) -> PhigateSchema:
    """Introspection cannot show applied directives, so each field's description also
    states its class (and permission): GraphiQL's docs then show the policy surface."""
    from graph.classification import classify

    classes = classify(built._schema)
    for (type_name, field_name), classification in classes.fields.items():
        field = built._schema.type_map[type_name].fields[field_name]  # type: ignore[union-attr]
        field.description = _with_class(field.description, classification)
    for (type_name, field_name), classification in classes.input_fields.items():
        field = built._schema.type_map[type_name].fields[field_name]  # type: ignore[union-attr]
        field.description = _with_class(field.description, classification)
    return built


def _with_class(description: str | None, classification: Any) -> str | None:
    if classification.data_class is None:
        return description
    phi = classification.data_class in PHI
    note = (
        f"PHI: {classification.data_class}." if phi else f"Data class: {classification.data_class}."
    )
    if classification.permission is not None:
        note += f" Requires {classification.permission.value}."
    return f"{description} {note}" if description else note


schema = _describe_classification(build_schema())


def schema_sdl() -> str:
    return print_schema(schema) + "\n"
