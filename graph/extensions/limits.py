"""Query limits, checked before anything executes (OWASP GraphQL cheat sheet; the same
defaults as GraphQL Armor): tokens, depth, aliases (counted through fragments),
directives, and a cost computed from the document with list multipliers taken from
``first`` arguments. A rejection names the limit and its maximum, never the query.

Depth and aliases use Strawberry's own validators; tokens, graphql-core's parser limit.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

from cachetools import LRUCache
from graphql import (
    DirectiveNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_list_type,
    visit,
)
from graphql.language import Visitor
from strawberry.extensions import SchemaExtension
from strawberry.extensions.max_aliases import create_validator as aliases_validator
from strawberry.extensions.query_depth_limiter import IgnoreContext
from strawberry.extensions.query_depth_limiter import create_validator as depth_validator
from strawberry.types import ExecutionResult

from graph.errors import LIMIT_EXCEEDED
from graph.extensions.caches import PARSE_CACHE_SIZE
from resolvers.context import QueryLimits

LIST_FACTOR = 10  # a list without a `first` argument is assumed to hold this many


def limit_error(limit: str, maximum: int, request_id: str) -> GraphQLError:
    return GraphQLError(
        f"The query exceeds the {limit} limit ({maximum}).",
        extensions={
            "code": LIMIT_EXCEEDED,
            "limit": limit,
            "maximum": maximum,
            "requestId": request_id,
        },
    )


@functools.cache
def _rules(max_depth: int, max_aliases: int) -> tuple[type, ...]:
    """The same rule classes for the same limits, so Strawberry's ValidationCache (keyed
    on the document and the rules) hits for a repeated document."""
    return depth_validator(max_depth, _introspection), aliases_validator(max_aliases)


def _introspection(context: IgnoreContext) -> bool:
    # GraphiQL's own schema query nests ofType deeply; introspection has its permission.
    return context.field_name in ("__schema", "__type")


class QueryLimitsExtension(SchemaExtension):
    """Adds the parse and validation limits of the request's QueryLimits, then checks
    directives and cost once variables are known."""

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        limits: QueryLimits = context.context.query_limits
        context.parse_options["max_tokens"] = limits.max_tokens
        context.validation_rules = (
            *context.validation_rules,
            *_rules(limits.max_depth, limits.max_aliases),
        )
        yield

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and context.result is None:
            request = context.context
            limits: QueryLimits = request.query_limits
            exceeded: tuple[str, int] | None = None
            if _directives_in(document) > limits.max_directives:
                exceeded = ("directives", limits.max_directives)
            elif (
                operation_cost(
                    context.schema._schema,
                    document,
                    context.operation_name,
                    context.variables or {},
                    limits,
                )
                > limits.max_cost
            ):
                exceeded = ("cost", limits.max_cost)
            if exceeded is not None:
                context.result = ExecutionResult(
                    data=None, errors=[limit_error(*exceeded, request.meta.request_id)]
                )
        yield


_DIRECTIVE_COUNTS: LRUCache[str, int] = LRUCache(maxsize=PARSE_CACHE_SIZE)


def _directives_in(document: Any) -> int:
    """count_directives, once per document text (a repeated query is the common case)."""
    if document.loc is None:
        return count_directives(document)
    body = document.loc.source.body
    count = _DIRECTIVE_COUNTS.get(body)
    if count is None:
        count = _DIRECTIVE_COUNTS[body] = count_directives(document)
    return count


def count_directives(document: Any) -> int:
    class Count(Visitor):
        found = 0

        def enter_directive(self, node: DirectiveNode, *_: Any) -> None:
            self.found += 1

    counter = Count()
    visit(document, counter)
    return counter.found


def operation_cost(
    schema: Any,
    document: Any,
    operation_name: str | None,
    variables: Mapping[str, Any],
    limits: QueryLimits,
) -> int:
    """1 per field, times the list size beneath it: ``first`` (or the default page size)
    for paginated fields, LIST_FACTOR for other lists; fragments counted where spread."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    operations = [
        d
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
        and (operation_name is None or (d.name and d.name.value == operation_name))
    ]
    total = 0
    for operation in operations:
        root = schema.get_root_type(operation.operation)
        total += _cost(operation.selection_set, root, fragments, variables, limits, frozenset())
    return total


def _first(node: FieldNode, variables: Mapping[str, Any], limits: QueryLimits) -> int:
    for argument in node.arguments or ():
        if argument.name.value != "first":
            continue
        value = argument.value
        if isinstance(value, IntValueNode):
            return min(max(int(value.value), 0), limits.max_page_size)
        if isinstance(value, VariableNode):
            given = variables.get(value.name.value)
            if isinstance(given, int):
                return min(max(given, 0), limits.max_page_size)
    return limits.default_page_size


def _cost(
    selection_set: SelectionSetNode | None,
    parent: Any,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
    limits: QueryLimits,
    spread: frozenset[str],
) -> int:
    if selection_set is None:
        return 0
    total = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            name = selection.name.value
            fields = getattr(parent, "fields", {}) or {}
            definition = fields.get(name)
            if definition is None:
                total += 1  # introspection or unknown (validation reports the latter)
                continue
            if "first" in definition.args:
                multiplier = _first(selection, variables, limits)
            elif is_list_type(get_nullable_type(definition.type)) and name != "edges":
                multiplier = LIST_FACTOR
            else:
                multiplier = 1
            child = _cost(
                selection.selection_set,
                get_named_type(definition.type),
                fragments,
                variables,
                limits,
                spread,
            )
            total += multiplier * (1 + child)
        elif isinstance(selection, InlineFragmentNode):
            total += _cost(selection.selection_set, parent, fragments, variables, limits, spread)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in spread:
                total += _cost(
                    fragment.selection_set, parent, fragments, variables, limits, spread | {name}
                )
    return total
