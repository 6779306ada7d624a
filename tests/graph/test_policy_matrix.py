"""The policy matrix, generated from the policy itself: for every role (and OAuth2
scope) x purpose of use x field, a query selecting that field is allowed or refused
exactly as the policy says, whether the field is selected directly, under an alias,
through a named fragment or through an inline fragment."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    Undefined,
    get_named_type,
    get_nullable_type,
    is_list_type,
    parse,
)

from domain.policy import bundled_policy
from domain.principals import Human, Service
from domain.purposes import Purpose
from domain.roles import Role, ServiceScope
from graph.classification import classify
from graph.enforcement.authorization import authorize
from graph.schema import schema
from resolvers.context import AccessRequest

SCHEMA = schema._schema
CLASSES = classify(SCHEMA)
POLICY = bundled_policy()
PURPOSES: list[Purpose | None] = [None, *Purpose]
DUMMY_ID = '"00000000-0000-4000-8000-000000000000"'


def literal(arg_type: object) -> str:
    named = get_named_type(arg_type)
    if isinstance(named, GraphQLEnumType):
        return next(iter(named.values))
    if isinstance(named, GraphQLScalarType):
        return {
            "ID": DUMMY_ID,
            "Int": "1",
            "Boolean": "false",
            "String": '"x"',
            "DateTime": '"2026-01-01T00:00:00Z"',
        }.get(named.name, '"2026-01-01"')
    raise AssertionError(f"no literal for {named}")


def call(name: str, field: object) -> str:
    required = [
        f"{arg}: {literal(a.type)}"
        for arg, a in field.args.items()
        if isinstance(a.type, GraphQLNonNull)
    ]
    return f"{name}({', '.join(required)})" if required else name


@dataclass(frozen=True)
class Path:
    """How to reach a type from Query: the chain of (type, field) steps and its text."""

    steps: tuple[tuple[str, str], ...]
    opening: str
    depth: int


def reachable() -> dict[str, Path]:
    paths: dict[str, Path] = {"Query": Path((), "", 0)}
    queue = deque(["Query"])
    while queue:
        type_name = queue.popleft()
        parent = SCHEMA.type_map[type_name]
        for field_name, field in parent.fields.items():
            target = get_named_type(field.type)
            if isinstance(target, GraphQLObjectType) and target.name not in paths:
                base = paths[type_name]
                paths[target.name] = Path(
                    (*base.steps, (type_name, field_name)),
                    f"{base.opening}{call(field_name, field)} {{ ",
                    base.depth + 1,
                )
                queue.append(target.name)
    return paths


PATHS = reachable()
FIELDS = [
    (type_name, field_name)
    for type_name, path in sorted(PATHS.items())
    if type_name != "Query"
    for field_name, field in SCHEMA.type_map[type_name].fields.items()
    if not isinstance(get_named_type(field.type), GraphQLObjectType)
]


def documents(type_name: str, field_name: str) -> dict[str, str]:
    path = PATHS[type_name]
    close = " }" * path.depth
    leaf = field_name
    return {
        "direct": f"{{ {path.opening}{leaf}{close} }}",
        "alias": f"{{ {path.opening}renamed: {leaf}{close} }}",
        "fragment": f"{{ {path.opening}...Bits{close} }} fragment Bits on {type_name} {{ {leaf} }}",
        "inline": f"{{ {path.opening}... on {type_name} {{ {leaf} }}{close} }}",
    }


SUBJECTS = [
    (f"role {role.value}", Human(user_id="u", role=role, session_id="s")) for role in Role
] + [
    (f"scope {scope.value}", Service(client_id="c", scopes=frozenset({scope})))
    for scope in ServiceScope
]


def expected(
    principal: Human | Service, purpose: Purpose | None, steps: tuple[tuple[str, str], ...]
) -> bool:
    grant = POLICY.grant(principal)
    if purpose is not None and purpose not in grant.purposes:
        return False
    for type_name, field_name in steps:
        classification = CLASSES.field(type_name, field_name)
        if (
            classification.permission is not None
            and classification.permission not in grant.permissions
        ):
            return False
        if classification.data_class not in grant.readable(purpose):
            return False
    return True


@pytest.mark.parametrize(("label", "principal"), SUBJECTS, ids=[label for label, _ in SUBJECTS])
def test_every_readable_field_for_every_purpose(label: str, principal: Human | Service) -> None:
    checked = 0
    for purpose in PURPOSES:
        access = AccessRequest(
            principal=principal,
            purpose_header=purpose.value if purpose else None,
            break_glass_reason="a written emergency reason",
        )
        for type_name, field_name in FIELDS:
            want = expected(principal, purpose, (*PATHS[type_name].steps, (type_name, field_name)))
            for variant, text in documents(type_name, field_name).items():
                _, decision = authorize(SCHEMA, parse(text), None, None, access)
                assert decision.allowed is want, (
                    f"{label} {purpose} {type_name}.{field_name} ({variant}): {decision.denials}"
                )
                if not want and purpose in (None, *POLICY.grant(principal).purposes):
                    denied = {d.coordinate for d in decision.denials}
                    assert denied, (
                        f"{label} {type_name}.{field_name}: refused without naming a field"
                    )
                checked += 1
    assert checked == len(PURPOSES) * len(FIELDS) * 4


def test_the_matrix_covers_every_object_type_of_the_query_side() -> None:
    covered = {type_name for type_name, _ in FIELDS}
    assert {"Patient", "Address", "Diagnosis", "Consent", "LegalHold", "Baa", "BaaChange", "BreachIncident",
            "RiskAssessment", "BreachNotification", "JurisdictionCount", "BreakGlassEpisode", "WorkforceUser"} <= covered  # fmt: skip


JSON_VALUES = {"ID": DUMMY_ID.strip('"'), "Int": 1, "Boolean": False, "String": "x",
               "DateTime": "2026-01-01T00:00:00Z", "Date": "2026-01-01"}  # fmt: skip


def sample(field_type: object) -> object:
    named = get_named_type(field_type)
    if isinstance(named, GraphQLEnumType):
        item: object = next(iter(named.values))
    elif isinstance(named, GraphQLInputObjectType):
        item = required_inputs(named.name)
    else:
        item = JSON_VALUES[named.name]
    return [item] if is_list_type(get_nullable_type(field_type)) else item


def required_inputs(input_type: str) -> dict[str, object]:
    """A value of an input type with every required field given: variables that do
    not coerce never execute, so they decide nothing."""
    return {
        name: sample(field.type)
        for name, field in SCHEMA.type_map[input_type].fields.items()
        if isinstance(field.type, GraphQLNonNull) and field.default_value is Undefined
    }


def with_field(input_type: str, field: str) -> dict[str, object]:
    """The required fields, and this one: null where it may be, else a value."""
    field_type = SCHEMA.type_map[input_type].fields[field].type
    value = required_inputs(input_type)
    value[field] = sample(field_type) if isinstance(field_type, GraphQLNonNull) else None
    return value


MUTATION_INPUTS = [
    (mutation_name, input_type.name, field_name)
    for mutation_name, mutation in SCHEMA.mutation_type.fields.items()
    for input_type in [get_named_type(mutation.args["input"].type)]
    if isinstance(input_type, GraphQLInputObjectType)
    for field_name in input_type.fields
]


def written(input_type: str, value: dict[str, object]) -> set[tuple[str, str]]:
    """Every input field the value writes, as coercion will see it: what it gives, and
    what a default supplies (the oracle, written apart from the gateway's code)."""
    found: set[tuple[str, str]] = set()
    for name, field in SCHEMA.type_map[input_type].fields.items():
        if name not in value and field.default_value is Undefined:
            continue
        found.add((input_type, name))
        named = get_named_type(field.type)
        items = value.get(name)
        for item in items if isinstance(items, list) else [items]:
            if isinstance(named, GraphQLInputObjectType) and isinstance(item, dict):
                found |= written(named.name, item)
    return found


def write_expected(
    principal: Human | Service,
    purpose: Purpose | None,
    mutation: str,
    input_type: str,
    value: dict[str, object],
) -> bool:
    grant = POLICY.grant(principal)
    if purpose is not None and purpose not in grant.purposes:
        return False
    root = CLASSES.field("Mutation", mutation)
    if root.permission not in grant.permissions or root.data_class not in grant.readable(purpose):
        return False
    classes = {CLASSES.input_field(*field).data_class for field in written(input_type, value)}
    return all(c == "PUBLIC" or c in grant.writable(purpose) for c in classes)


@pytest.mark.parametrize(("label", "principal"), SUBJECTS, ids=[label for label, _ in SUBJECTS])
def test_every_input_field_is_a_write_checked_against_the_purpose(
    label: str, principal: Human | Service
) -> None:
    for purpose in PURPOSES:
        access = AccessRequest(
            principal=principal,
            purpose_header=purpose.value if purpose else None,
            break_glass_reason="a written emergency reason",
        )
        for mutation, input_type, field in MUTATION_INPUTS:
            document = parse(
                f"mutation($v: {input_type}!) {{ {mutation}(input: $v) {{ __typename }} }}"
            )
            value = with_field(input_type, field)
            _, decision = authorize(SCHEMA, document, None, {"v": value}, access)
            want = write_expected(principal, purpose, mutation, input_type, value)
            assert decision.allowed is want, (
                f"{label} {purpose} {mutation} {input_type}.{field}: {decision.denials}"
            )
