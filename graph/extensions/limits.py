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

from graph.enforcement.input_rules import input_rule
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
def _rules(max_depth: int, max_aliases: int, max_list: int) -> tuple[type, ...]:
    """The same rule classes for the same limits, so Strawberry's ValidationCache (keyed
    on the document and the rules) hits for a repeated document. The text rule for
    string literals and the input-list maximum ride along: a document is checked once."""
    return (
        depth_validator(max_depth, _introspection),
        aliases_validator(max_aliases),
        input_rule(max_list),
    )


def limit_rules(limits: QueryLimits) -> tuple[type, ...]:
    """The validation rules a request's QueryLimits add (the same classes for the same
    limits)."""
    return _rules(limits.max_depth, limits.max_aliases, limits.max_input_list)


def _introspection(context: IgnoreContext) -> bool:
    # GraphiQL's own schema query nests ofType deeply; introspection has its permission.
    return context.field_name in ("__schema", "__type")


class QueryLimitsExtension(SchemaExtension):
    """Adds the parse and validation limits of the request's QueryLimits. Directives and
    cost are checked by the executor once variables are coerced (exceeded_limit)."""

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        limits: QueryLimits = context.context.query_limits
        context.parse_options["max_tokens"] = limits.max_tokens
        context.validation_rules = (
            *context.validation_rules,
            *limit_rules(limits),
        )
        yield


def exceeded_limit(
    schema: Any,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
    limits: QueryLimits,
) -> tuple[str, int] | None:
    """The limit an operation exceeds once its variables are known (directives, cost),
    from what the executor holds: its operation and its coerced variables (a page size
    given by a variable's default counts as what it will be)."""
    if _directives_in(operation, fragments) > limits.max_directives:
        return ("directives", limits.max_directives)
    root = schema.get_root_type(operation.operation)
    cost = _cost(operation.selection_set, root, fragments, variables, limits, frozenset())
    if cost > limits.max_cost:
        return ("cost", limits.max_cost)
    return None


_DIRECTIVE_COUNTS: LRUCache[tuple[str, int], int] = LRUCache(maxsize=PARSE_CACHE_SIZE)


def _directives_in(
    operation: OperationDefinitionNode, fragments: Mapping[str, FragmentDefinitionNode]
) -> int:
    """count_directives of the operation and the document's fragments, once per
    document text (a repeated query is the common case)."""
    key = (operation.loc.source.body, operation.loc.start) if operation.loc else None
    count = _DIRECTIVE_COUNTS.get(key) if key else None
    if count is None:
        count = count_directives(operation) + sum(map(count_directives, fragments.values()))
        if key:
            _DIRECTIVE_COUNTS[key] = count
    return count


def count_directives(document: Any) -> int:
    class Count(Visitor):
        found = 0

        def enter_directive(self, node: DirectiveNode, *_: Any) -> None:
            self.found += 1

    counter = Count()
    visit(document, counter)
    return counter.found


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
