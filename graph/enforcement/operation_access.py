"""What an operation touches, as execution will run it: every field it selects and
every argument and input field it provides, as Access records.

Nothing here re-implements a rule of the GraphQL specification. The fields are those
graphql-core's own ``collect_fields``/``collect_subfields`` group for execution (so
fragments, aliases, ``@skip``/``@include`` and field merging are exactly the
executor's), and the inputs are the argument values graphql-core's own
``get_argument_values`` hands to resolvers, from the variables as graphql-core coerced
them (defaults applied, single values coerced to lists, nested input objects). The
executor computes the decision from its own state (see graph/execution/executor.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLObjectType,
    GraphQLSchema,
    OperationType,
    get_named_type,
    is_abstract_type,
)
from graphql.execution.collect_fields import (
    FieldDetails,
    FragmentDetails,
    collect_fields,
    collect_subfields,
)
from graphql.execution.values import VariableValues, get_argument_values
from graphql.language import OperationDefinitionNode

from domain.authorization import Access
from domain.data_classes import DataClass
from domain.permissions import Permission
from graph.classification import SchemaClassification

INTROSPECTION_FIELDS = frozenset({"__schema", "__type"})


class _Walk:
    def __init__(
        self,
        schema: GraphQLSchema,
        classification: SchemaClassification,
        operation: OperationDefinitionNode,
        fragments: dict[str, FragmentDetails],
        variable_values: VariableValues,
    ) -> None:
        self.schema = schema
        self.classes = classification
        self.operation = operation
        self.fragments = fragments
        self.variables = variable_values
        self.write = operation.operation is OperationType.MUTATION

    def grouped(
        self, parent: GraphQLObjectType, grouped: Mapping[str, list[FieldDetails]], path: str
    ) -> Iterator[Access]:
        for response_name, details in grouped.items():
            yield from self.field(
                parent, details, f"{path}.{response_name}" if path else response_name
            )

    def field(
        self, parent: GraphQLObjectType, details: list[FieldDetails], here: str
    ) -> Iterator[Access]:
        # As graphql-core's execute_field: the first node gives the name and arguments.
        first = details[0]
        node = first.node
        name = node.name.value
        if name == "__typename":
            return
        if name in INTROSPECTION_FIELDS:
            yield Access(f"Query.{name}", here, DataClass.PUBLIC.value, Permission.INTROSPECT)
            return
        definition = parent.fields.get(name)
        if definition is None:
            return  # the executor skips it too (and validation reports it first)
        classification = self.classes.field(parent.name, name)
        yield Access(
            f"{parent.name}.{name}",
            here,
            classification.data_class,
            classification.permission,
            node=node.loc.start if node.loc else -1,
        )
        if definition.args:
            try:
                arguments = get_argument_values(
                    definition, node, self.variables, first.fragment_variable_values
                )
            except GraphQLError:
                return  # graphql-core does not resolve the field either (a field error)
            by_out_name = {
                (argument.out_name or argument_name): argument_name
                for argument_name, argument in definition.args.items()
            }
            for out_name, value in arguments.items():
                argument_name = by_out_name.get(out_name, out_name)
                argument_class = self.classes.argument(parent.name, name, argument_name)
                yield Access(
                    f"{parent.name}.{name}({argument_name}:)",
                    f"{here}({argument_name})",
                    argument_class.data_class,
                    write=self.write,
                    input=True,
                )
                yield from self.value(
                    value, definition.args[argument_name].type, f"{here}.{argument_name}"
                )
        named = get_named_type(definition.type)
        if node.selection_set is None:
            return
        runtime_types = (
            self.schema.get_possible_types(named)  # type: ignore[arg-type]
            if is_abstract_type(named)
            else [named]
        )
        for runtime in runtime_types:
            if isinstance(runtime, GraphQLObjectType):
                sub = collect_subfields(
                    self.schema, self.fragments, self.variables, self.operation, runtime, details
                )
                yield from self.grouped(runtime, sub.grouped_field_set, here)

    def value(self, value: Any, input_type: GraphQLInputType, path: str) -> Iterator[Access]:
        """Input fields present in a coerced value: every key graphql-core put there,
        whether the caller sent it, a variable carried it or a default supplied it."""
        named = get_named_type(input_type)
        if isinstance(value, list):
            for index, item in enumerate(value):
                yield from self.value(item, named, f"{path}[{index}]")
        elif isinstance(value, Mapping) and isinstance(named, GraphQLInputObjectType):
            by_out_name = {
                (field.out_name or field_name): field_name
                for field_name, field in named.fields.items()
            }
            for out_name, item in value.items():
                field_name = by_out_name.get(out_name)
                if field_name is None:
                    continue
                classification = self.classes.input_field(named.name, field_name)
                here = f"{path}.{field_name}"
                yield Access(
                    f"{named.name}.{field_name}",
                    here,
                    classification.data_class,
                    write=self.write,
                    input=True,
                )
                yield from self.value(item, named.fields[field_name].type, here)


def accesses(
    schema: GraphQLSchema,
    classification: SchemaClassification,
    operation: OperationDefinitionNode,
    fragments: dict[str, FragmentDetails],
    variable_values: VariableValues,
) -> list[Access]:
    """Everything the operation touches, from the executor's own state."""
    root = schema.get_root_type(operation.operation)
    if root is None:
        return []
    walk = _Walk(schema, classification, operation, fragments, variable_values)
    collected = collect_fields(schema, fragments, variable_values, root, operation)
    return list(walk.grouped(root, collected.grouped_field_set, ""))


def shape(value: Any) -> Any:
    """What of a coerced variables payload can change the decision, without its values:
    which input fields are present (and how many list items, so paths match), and
    booleans by value (``@skip(if: $flag)`` selects fields). Part of the cache key."""
    if isinstance(value, Mapping):
        return tuple(sorted((key, shape(item)) for key, item in value.items()))
    if isinstance(value, list):
        return ("[]", tuple(shape(item) for item in value))
    if isinstance(value, bool):
        return value
    return None
