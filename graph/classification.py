"""The policy surface of the schema: each field's, argument's and input field's data
class and required permission, read once from the directives."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from graphql import GraphQLInputObjectType, GraphQLObjectType, GraphQLSchema

from domain.permissions import Permission
from graph.directives import Classified, Phi, RequiresPermission


@dataclass(frozen=True, slots=True)
class Classification:
    data_class: str | None
    permission: Permission | None = None


UNCLASSIFIED = Classification(None)


def _of(definition: Any) -> Classification:
    strawberry_definition = (getattr(definition, "extensions", None) or {}).get(
        "strawberry-definition"
    )
    data_class: str | None = None
    permission: Permission | None = None
    for directive in getattr(strawberry_definition, "directives", None) or ():
        if isinstance(directive, Phi):
            data_class = directive.category.value
        elif isinstance(directive, Classified):
            data_class = directive.data_class.value
        elif isinstance(directive, RequiresPermission):
            permission = directive.permission
    return Classification(data_class, permission)


@dataclass(frozen=True)
class SchemaClassification:
    fields: dict[tuple[str, str], Classification]
    arguments: dict[tuple[str, str, str], Classification]
    input_fields: dict[tuple[str, str], Classification]

    def field(self, type_name: str, field_name: str) -> Classification:
        return self.fields.get((type_name, field_name), UNCLASSIFIED)

    def argument(self, type_name: str, field_name: str, argument: str) -> Classification:
        return self.arguments.get((type_name, field_name, argument), UNCLASSIFIED)

    def input_field(self, type_name: str, field_name: str) -> Classification:
        return self.input_fields.get((type_name, field_name), UNCLASSIFIED)


@cache
def classify(schema: GraphQLSchema) -> SchemaClassification:
    fields: dict[tuple[str, str], Classification] = {}
    arguments: dict[tuple[str, str, str], Classification] = {}
    input_fields: dict[tuple[str, str], Classification] = {}
    for type_name, graphql_type in schema.type_map.items():
        if type_name.startswith("__"):
            continue
        if isinstance(graphql_type, GraphQLObjectType):
            for field_name, field in graphql_type.fields.items():
                fields[type_name, field_name] = _of(field)
                for argument_name, argument in field.args.items():
                    arguments[type_name, field_name, argument_name] = _of(argument)
        elif isinstance(graphql_type, GraphQLInputObjectType):
            for field_name, field in graphql_type.fields.items():
                input_fields[type_name, field_name] = _of(field)
    return SchemaClassification(fields, arguments, input_fields)
