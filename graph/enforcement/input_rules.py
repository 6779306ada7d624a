"""Rules for every value an operation carries, whatever field it is for: the text rule
(domain/text.py) for strings and a maximum length for lists.

They apply to the literals written in the document (a validation rule, so a document is
checked once and the verdict cached with its validation) and to the variables as
graphql-core coerced them (defaults included), before anything executes. A violation is
bad input naming where the value was given; nothing is quoted."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError, ValidationRule
from graphql.language import (
    ArgumentNode,
    ListValueNode,
    ObjectFieldNode,
    StringValueNode,
    VariableDefinitionNode,
)

from domain.errors import FieldViolation, InvalidInput
from domain.text import UNSAFE_TEXT_RULE, is_unsafe_text

MAX_VIOLATIONS = 20


def list_rule(maximum: int) -> str:
    return f"must hold at most {maximum} items (send more in further requests)"


def _literal_path(ancestors: Any, parent: Any, node: Any) -> str:
    parts: list[str] = []
    chain = [*ancestors, parent, node]  # graphql-core passes the parent apart
    for index, item in enumerate(chain):
        if isinstance(item, ArgumentNode):
            parts = [item.name.value]
        elif isinstance(item, VariableDefinitionNode):
            parts = [f"${item.variable.name.value}"]
        elif isinstance(item, ObjectFieldNode):
            parts.append(f".{item.name.value}")
        elif (
            isinstance(item, tuple | list)
            and index > 0
            and isinstance(chain[index - 1], ListValueNode)
        ):
            # graphql-core's ancestors hold the tuple of values between a list and its item.
            following = chain[index + 1] if index + 1 < len(chain) else None
            position = next((i for i, value in enumerate(item) if value is following), None)
            if position is not None:
                parts.append(f"[{position}]")
    return "".join(parts) or "argument"


@functools.cache
def input_rule(max_list: int) -> type[ValidationRule]:
    """The validation rule for these limits (one class per limit, so Strawberry's
    validation cache, keyed on the rules, keeps hitting)."""

    class InputValuesRule(ValidationRule):
        def _refuse(self, node: Any, parent: Any, ancestors: Any, rule: str) -> None:
            where = _literal_path(ancestors, parent, node)
            self.report_error(
                GraphQLError(
                    f"Argument '{where}' {rule}.",
                    nodes=[node],
                    original_error=InvalidInput([FieldViolation(where, rule)]),
                )
            )

        def enter_string_value(
            self, node: StringValueNode, _key: Any, parent: Any, _path: Any, ancestors: Any
        ) -> None:
            if is_unsafe_text(node.value):
                self._refuse(node, parent, ancestors, UNSAFE_TEXT_RULE)

        def enter_list_value(
            self, node: ListValueNode, _key: Any, parent: Any, _path: Any, ancestors: Any
        ) -> Any:
            if len(node.values) > max_list:
                self._refuse(node, parent, ancestors, list_rule(max_list))
                return self.SKIP  # its items are not looked at one by one
            return None

    return InputValuesRule


def _violations(value: Any, path: str, max_list: int) -> Iterator[FieldViolation]:
    """Iterative, so hostile nesting cannot exhaust the stack."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if is_unsafe_text(item):
                yield FieldViolation(where, UNSAFE_TEXT_RULE)
        elif isinstance(item, dict):
            stack.extend((child, f"{where}.{key}") for key, child in item.items())
        elif isinstance(item, list | tuple):
            if len(item) > max_list:
                yield FieldViolation(where, list_rule(max_list))
                continue
            stack.extend((child, f"{where}[{index}]") for index, child in enumerate(item))


def variable_violations(coerced: dict[str, Any], max_list: int) -> InvalidInput | None:
    """The coerced variables' values that break a rule, as one client error."""
    violations: list[FieldViolation] = []
    for name, value in coerced.items():
        for violation in _violations(value, f"${name}", max_list):
            violations.append(violation)
            if len(violations) >= MAX_VIOLATIONS:
                return InvalidInput(violations)
    return InvalidInput(violations) if violations else None
