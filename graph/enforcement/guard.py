"""The second line: a check where PHI is used, independent of how the decision was made.

Every PHI field's resolver is wrapped, once, when the schema is built: before it runs it
asks whether the request's decision allowed this very field of the document (a set
lookup on the node's position; nothing for fields that are not PHI). Every field that
takes arguments able to carry PHI (mutations, identifier lookups) is wrapped too: before
it runs, the argument values it is about to receive (what graphql-core coerced, which
Strawberry turns into the resolver's inputs) are walked, and each PHI input field
present must be one the decision allowed. A field or input the decision did not cover
raises ``GuardTripped``; the unit of work then fails the request closed (no data, writes
rolled back, an ERROR entry and a security event naming the coordinate).

In a correct build the guard never fires: the decision is computed from the executor's
own state. It is here for the build that is not correct.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from graphql import (
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLSchema,
    get_named_type,
)

from domain.policy import PHI
from graph.classification import SchemaClassification, classify

Resolver = Callable[..., Any]


def install(schema: GraphQLSchema) -> GraphQLSchema:
    """Wrap the resolvers of PHI fields and of fields whose arguments can carry PHI."""
    classes = classify(schema)
    carriers = _phi_carrying_inputs(schema, classes)
    for type_name, graphql_type in schema.type_map.items():
        if type_name.startswith("__") or not isinstance(graphql_type, GraphQLObjectType):
            continue
        for field_name, field in graphql_type.fields.items():
            coordinate = f"{type_name}.{field_name}"
            if field.resolve is None:
                raise TypeError(f"{coordinate} has no resolver to guard")
            if classes.field(type_name, field_name).data_class in PHI:
                field.resolve = _read_guard(field.resolve, coordinate)
            if _takes_phi(type_name, field_name, field, classes, carriers):
                field.resolve = _input_guard(field.resolve, type_name, field_name, field, classes)
    return schema


def _read_guard(resolve: Resolver, coordinate: str) -> Resolver:
    def guarded(source: Any, info: GraphQLResolveInfo, **arguments: Any) -> Any:
        location = info.field_nodes[0].loc
        context = info.context
        if location is None or location.start not in context.phi_nodes:
            raise context.guard_tripped(coordinate, write=False)
        return resolve(source, info, **arguments)

    return guarded


def _input_guard(
    resolve: Resolver,
    type_name: str,
    field_name: str,
    field: GraphQLField,
    classes: SchemaClassification,
) -> Resolver:
    write = type_name == "Mutation"

    def guarded(source: Any, info: GraphQLResolveInfo, **arguments: Any) -> Any:
        allowed = info.context.phi_inputs
        for coordinate in phi_inputs_in(type_name, field_name, field, arguments, classes):
            if coordinate not in allowed:
                raise info.context.guard_tripped(coordinate, write=write)
        return resolve(source, info, **arguments)

    return guarded


def phi_inputs_in(
    type_name: str,
    field_name: str,
    field: GraphQLField,
    arguments: Mapping[str, Any],
    classes: SchemaClassification,
) -> Iterator[str]:
    """The coordinates of the PHI arguments and input fields present in the argument
    values a resolver receives."""
    by_out_name = {(a.out_name or name): name for name, a in field.args.items()}
    for out_name, value in arguments.items():
        name = by_out_name.get(out_name, out_name)
        if classes.argument(type_name, field_name, name).data_class in PHI:
            yield f"{type_name}.{field_name}({name}:)"
        yield from _phi_in_value(value, field.args[name].type, classes)


def _phi_in_value(
    value: Any, input_type: GraphQLInputType, classes: SchemaClassification
) -> Iterator[str]:
    named = get_named_type(input_type)
    if isinstance(value, list):
        for item in value:
            yield from _phi_in_value(item, named, classes)
    elif isinstance(value, Mapping) and isinstance(named, GraphQLInputObjectType):
        names = {(f.out_name or name): name for name, f in named.fields.items()}
        for key, item in value.items():
            name = names[key]
            if classes.input_field(named.name, name).data_class in PHI:
                yield f"{named.name}.{name}"
            yield from _phi_in_value(item, named.fields[name].type, classes)


def _phi_carrying_inputs(schema: GraphQLSchema, classes: SchemaClassification) -> frozenset[str]:
    """Input object types that can hold a PHI input field, however deep."""
    inputs = {
        name: t for name, t in schema.type_map.items() if isinstance(t, GraphQLInputObjectType)
    }
    carrying: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, input_type in inputs.items():
            if name in carrying:
                continue
            for field_name, field in input_type.fields.items():
                if (
                    classes.input_field(name, field_name).data_class in PHI
                    or get_named_type(field.type).name in carrying
                ):
                    carrying.add(name)
                    changed = True
                    break
    return frozenset(carrying)


def _takes_phi(
    type_name: str,
    field_name: str,
    field: GraphQLField,
    classes: SchemaClassification,
    carriers: frozenset[str],
) -> bool:
    return any(
        classes.argument(type_name, field_name, name).data_class in PHI
        or get_named_type(argument.type).name in carriers
        for name, argument in field.args.items()
    )
