"""What an operation touches: every field it selects (through fragments, inline
fragments and aliases) and every input field it provides, as Access records."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    get_named_type,
)
from graphql.language import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    ValueNode,
    VariableNode,
)

from domain.authorization import Access
from domain.data_classes import DataClass
from domain.permissions import Permission
from graph.classification import SchemaClassification

INTROSPECTION_FIELDS = frozenset({"__schema", "__type"})


def operation_of(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((op for op in operations if op.name and op.name.value == name), None)


class _Walker:
    def __init__(
        self,
        schema: GraphQLSchema,
        classification: SchemaClassification,
        document: DocumentNode,
        variables: Mapping[str, Any],
        write: bool,
    ) -> None:
        self.schema = schema
        self.classes = classification
        self.variables = variables
        self.write = write
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }

    def selections(
        self,
        selection_set: SelectionSetNode,
        parent: GraphQLNamedType,
        path: str,
        seen: frozenset[str],
    ) -> Iterator[Access]:
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                yield from self.field(selection, parent, path, seen)
            elif isinstance(selection, InlineFragmentNode):
                condition = (
                    self.schema.get_type(selection.type_condition.name.value)
                    if selection.type_condition
                    else parent
                )
                if condition is not None:
                    yield from self.selections(selection.selection_set, condition, path, seen)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if (
                    fragment is not None and name not in seen
                ):  # cycles are a validation error anyway
                    condition = self.schema.get_type(fragment.type_condition.name.value)
                    if condition is not None:
                        yield from self.selections(
                            fragment.selection_set, condition, path, seen | {name}
                        )

    def field(
        self, node: FieldNode, parent: GraphQLNamedType, path: str, seen: frozenset[str]
    ) -> Iterator[Access]:
        name = node.name.value
        here = f"{path}.{node.alias.value if node.alias else name}".lstrip(".")
        if name == "__typename":
            return
        if name in INTROSPECTION_FIELDS:
            yield Access(f"Query.{name}", here, DataClass.PUBLIC.value, Permission.INTROSPECT)
            return
        if not isinstance(parent, GraphQLObjectType) or name not in parent.fields:
            return  # an unknown field is a validation error, reported before this runs
        definition = parent.fields[name]
        classification = self.classes.field(parent.name, name)
        yield Access(
            f"{parent.name}.{name}", here, classification.data_class, classification.permission
        )
        for argument in node.arguments or ():
            argument_name = argument.name.value
            argument_definition = definition.args.get(argument_name)
            if argument_definition is None:
                continue
            argument_class = self.classes.argument(parent.name, name, argument_name)
            coordinate = f"{parent.name}.{name}({argument_name}:)"
            yield Access(
                coordinate, f"{here}({argument_name})", argument_class.data_class, write=self.write
            )
            yield from self.value(
                argument.value, argument_definition.type, f"{here}.{argument_name}"
            )
        if node.selection_set is not None:
            yield from self.selections(
                node.selection_set, get_named_type(definition.type), here, seen
            )

    def value(self, node: ValueNode, input_type: GraphQLInputType, path: str) -> Iterator[Access]:
        named = get_named_type(input_type)
        if isinstance(node, VariableNode):
            yield from self.raw(self.variables.get(node.name.value), named, path)
        elif isinstance(node, ListValueNode):
            for index, item in enumerate(node.values):
                yield from self.value(item, named, f"{path}[{index}]")
        elif isinstance(node, ObjectValueNode) and isinstance(named, GraphQLInputObjectType):
            for item in node.fields:
                field_name = item.name.value
                if field_name in named.fields:
                    yield from self.input_field(named, field_name, f"{path}.{field_name}")
                    yield from self.value(
                        item.value, named.fields[field_name].type, f"{path}.{field_name}"
                    )

    def raw(self, value: Any, named: GraphQLNamedType, path: str) -> Iterator[Access]:
        """Input fields actually present in a variable's JSON value."""
        if isinstance(value, list):
            for index, item in enumerate(value):
                yield from self.raw(item, named, f"{path}[{index}]")
        elif isinstance(value, dict) and isinstance(named, GraphQLInputObjectType):
            for field_name, item in value.items():
                if field_name in named.fields:
                    yield from self.input_field(named, field_name, f"{path}.{field_name}")
                    yield from self.raw(
                        item, get_named_type(named.fields[field_name].type), f"{path}.{field_name}"
                    )

    def input_field(
        self, input_type: GraphQLInputObjectType, name: str, path: str
    ) -> Iterator[Access]:
        classification = self.classes.input_field(input_type.name, name)
        yield Access(f"{input_type.name}.{name}", path, classification.data_class, write=self.write)


def accesses(
    schema: GraphQLSchema,
    classification: SchemaClassification,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: Mapping[str, Any],
) -> list[Access]:
    root = (
        schema.mutation_type if operation.operation is OperationType.MUTATION else schema.query_type
    )
    if root is None:
        return []
    walker = _Walker(
        schema,
        classification,
        document,
        variables,
        write=operation.operation is OperationType.MUTATION,
    )
    return list(walker.selections(operation.selection_set, root, "", frozenset()))


def shape(value: Any) -> Any:
    """Which input fields a variables payload provides, without their values: part of
    the decision cache key."""
    if isinstance(value, dict):
        return tuple(sorted((key, shape(item)) for key, item in value.items()))
    if isinstance(value, list):
        return ("[]", frozenset(shape(item) for item in value))
    return None
