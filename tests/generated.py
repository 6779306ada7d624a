"""Generated GraphQL operations for property-based tests.

hypothesis-graphql generates valid queries and mutations from the schema, with literal
arguments. On top of each, this module draws the shapes a decision must survive: any
argument or input-object field moved into a variable (sent in the request, left to the
variable's default value, or both), selections wrapped in named and inline fragments,
aliases at any depth, and fields under ``@skip``/``@include`` driven by boolean variables.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import graphql
from graphql import (
    REMOVE,
    ArgumentNode,
    BooleanValueNode,
    DirectiveNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    NamedTypeNode,
    NameNode,
    ObjectFieldNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    TypeInfo,
    TypeInfoVisitor,
    ValueNode,
    VariableDefinitionNode,
    VariableNode,
    Visitor,
    parse_type,
    print_ast,
    value_from_ast_untyped,
    visit,
)
from hypothesis import strategies as st
from hypothesis_graphql import mutations, queries

EPOCH = date(1990, 1, 1)


def scalars(ids: Sequence[str]) -> dict[str, st.SearchStrategy[ValueNode]]:
    """Values for the schema's scalars: ids mostly of records that exist (so operations
    reach data), dates and times in a sane range."""
    known = st.sampled_from(list(ids)) if ids else st.nothing()
    any_id = st.one_of(known, st.uuids().map(str))
    days = st.integers(min_value=0, max_value=12_000)
    return {
        "ID": any_id.map(lambda value: StringValueNode(value=value)),
        # Page sizes and counts: mostly in range (so lists come back), sometimes not.
        "Int": st.one_of(st.integers(min_value=1, max_value=30), st.integers()).map(
            lambda n: IntValueNode(value=str(n))
        ),
        "Date": days.map(lambda n: StringValueNode(value=(EPOCH + timedelta(days=n)).isoformat())),
        "DateTime": days.map(
            lambda n: StringValueNode(
                value=(datetime(1990, 1, 1, tzinfo=UTC) + timedelta(days=n)).isoformat()
            )
        ),
    }


@dataclass
class Operation:
    document: str
    variables: dict[str, Any] = field(default_factory=dict)
    mutation: bool = False


class _Lift(Visitor):
    """Moves chosen argument and input-object-field values into variables."""

    def __init__(self, type_info: TypeInfo, choices: list[int]) -> None:
        super().__init__()
        self.type_info = type_info
        self.choices = choices
        self.definitions: list[VariableDefinitionNode] = []
        self.variables: dict[str, Any] = {}

    def _choice(self) -> int:
        return self.choices.pop() if self.choices else 0

    def _lift(self, node: ArgumentNode | ObjectFieldNode) -> Any:
        input_type = self.type_info.get_input_type()
        choice = self._choice()
        if input_type is None or choice == 0 or isinstance(node.value, VariableNode):
            return None
        name = f"v{len(self.definitions)}"
        value = value_from_ast_untyped(node.value)
        type_node = parse_type(str(input_type))
        # 1: sent in the request; 2: left to the variable's default; 3: a default the
        # request overrides with the same value.
        default = node.value if choice in (2, 3) else None
        if choice in (1, 3):
            self.variables[name] = value
        self.definitions.append(
            VariableDefinitionNode(
                variable=VariableNode(name=NameNode(value=name)),
                type=type_node,
                default_value=default,
                directives=(),
            )
        )
        return node.__class__(name=node.name, value=VariableNode(name=NameNode(value=name)))

    def enter_argument(self, node: ArgumentNode, *_: Any) -> Any:
        return self._lift(node)

    def enter_object_field(self, node: ObjectFieldNode, *_: Any) -> Any:
        return self._lift(node)


def _skip_directive(name: str, include: bool) -> DirectiveNode:
    return DirectiveNode(
        name=NameNode(value="include" if include else "skip"),
        arguments=(
            ArgumentNode(name=NameNode(value="if"), value=VariableNode(name=NameNode(value=name))),
        ),
    )


def _reshape(
    operation: OperationDefinitionNode,
    schema: GraphQLSchema,
    draw: Any,
) -> tuple[
    OperationDefinitionNode,
    list[FragmentDefinitionNode],
    list[VariableDefinitionNode],
    dict[str, Any],
]:
    """Fragments and conditional fields around the operation's selections."""
    fragments: list[FragmentDefinitionNode] = []
    definitions: list[VariableDefinitionNode] = []
    variables: dict[str, Any] = {}
    counter = iter(range(10_000))

    def selection_set(node: SelectionSetNode, type_name: str) -> SelectionSetNode:
        selections = []
        graphql_type = schema.get_type(type_name)
        for selection in node.selections:
            if isinstance(selection, FieldNode) and selection.selection_set is not None:
                field_type = graphql.get_named_type(
                    graphql_type.fields[selection.name.value].type  # type: ignore[union-attr]
                )
                selection = FieldNode(
                    alias=selection.alias,
                    name=selection.name,
                    arguments=selection.arguments,
                    directives=selection.directives,
                    selection_set=selection_set(selection.selection_set, field_type.name),
                )
            wrap = draw(st.integers(min_value=0, max_value=9))
            if wrap == 1:  # an inline fragment on the parent type
                selection = InlineFragmentNode(
                    type_condition=NamedTypeNode(name=NameNode(value=type_name)),
                    directives=(),
                    selection_set=SelectionSetNode(selections=(selection,)),
                )
            elif wrap == 2:  # a named fragment
                fragment = f"F{next(counter)}"
                fragments.append(
                    FragmentDefinitionNode(
                        name=NameNode(value=fragment),
                        type_condition=NamedTypeNode(name=NameNode(value=type_name)),
                        directives=(),
                        selection_set=SelectionSetNode(selections=(selection,)),
                    )
                )
                selection = FragmentSpreadNode(name=NameNode(value=fragment), directives=())
            elif wrap == 4 and isinstance(selection, FieldNode) and selection.alias is None:
                selection = FieldNode(  # an alias: response keys differ from field names
                    alias=NameNode(value=f"k{next(counter)}"),
                    name=selection.name,
                    arguments=selection.arguments,
                    directives=selection.directives,
                    selection_set=selection.selection_set,
                )
            elif wrap == 3 and isinstance(selection, FieldNode):  # @skip/@include($flag)
                flag = f"b{next(counter)}"
                include = draw(st.booleans())
                value = draw(st.booleans())
                sent = draw(st.booleans())
                definitions.append(
                    VariableDefinitionNode(
                        variable=VariableNode(name=NameNode(value=flag)),
                        type=parse_type("Boolean!") if sent else parse_type("Boolean"),
                        default_value=None if sent else BooleanValueNode(value=value),
                        directives=(),
                    )
                )
                if sent:
                    variables[flag] = value
                selection = FieldNode(
                    alias=selection.alias,
                    name=selection.name,
                    arguments=selection.arguments,
                    directives=(*(selection.directives or ()), _skip_directive(flag, include)),
                    selection_set=selection.selection_set,
                )
            selections.append(selection)
        return SelectionSetNode(selections=tuple(selections))

    root = "Mutation" if operation.operation.value == "mutation" else "Query"
    reshaped = OperationDefinitionNode(
        operation=operation.operation,
        name=operation.name,
        variable_definitions=operation.variable_definitions,
        directives=operation.directives,
        selection_set=selection_set(operation.selection_set, root),
    )
    return reshaped, fragments, definitions, variables


class _Prune(Visitor):
    """Drops the selected fields and input fields a caller may not touch (keeping at least
    ``__typename`` in a selection set), so that generated operations also run."""

    def __init__(
        self,
        type_info: TypeInfo,
        field_allowed: Callable[[str], bool],
        input_allowed: Callable[[str], bool],
    ) -> None:
        super().__init__()
        self.type_info = type_info
        self.field_allowed = field_allowed
        self.input_allowed = input_allowed

    def enter_field(self, node: FieldNode, *_: Any) -> Any:
        parent = self.type_info.get_parent_type()
        if parent is not None and not self.field_allowed(f"{parent.name}.{node.name.value}"):
            return REMOVE
        return None

    def enter_argument(
        self, node: ArgumentNode, _key: Any, _parent: Any, _path: Any, ancestors: Any
    ) -> Any:
        if self.type_info.get_directive() is not None:
            return None
        parent = self.type_info.get_parent_type()
        owner = next((a for a in reversed(ancestors) if isinstance(a, FieldNode)), None)
        if parent is None or owner is None:
            return None
        if not self.field_allowed(f"{parent.name}.{owner.name.value}({node.name.value}:)"):
            return REMOVE
        return None

    def enter_object_field(self, node: ObjectFieldNode, *_: Any) -> Any:
        parent = self.type_info.get_parent_input_type()
        named = graphql.get_named_type(parent) if parent is not None else None
        if named is not None and not self.input_allowed(f"{named.name}.{node.name.value}"):
            return REMOVE
        return None

    def leave_selection_set(self, node: SelectionSetNode, *_: Any) -> Any:
        if not node.selections:
            typename = FieldNode(name=NameNode(value="__typename"), arguments=(), directives=())
            return SelectionSetNode(selections=(typename,))
        return None


@st.composite
def operations(
    draw: Any,
    schema: GraphQLSchema,
    *,
    ids: Sequence[str],
    mutation: bool,
    field_allowed: Callable[[str], bool] | None = None,
    input_allowed: Callable[[str], bool] | None = None,
    roots: Sequence[str] | None = None,
) -> Operation:
    """An operation; with ``field_allowed``/``input_allowed``, most of the time only what
    they allow is kept (the rest of the time the operation is left whole, to be refused).
    ``roots`` limits the root fields (one to three of them) when given."""
    root_type = schema.mutation_type if mutation else schema.query_type
    chosen = [name for name in roots or () if root_type and name in root_type.fields]
    strategy = (mutations if mutation else queries)(
        schema,
        fields=draw(st.lists(st.sampled_from(chosen), min_size=1, max_size=3, unique=True))
        if chosen
        else None,
        custom_scalars=scalars(ids),
        print_ast=lambda document: document,
        allow_x00=False,
        codec="utf-8",
    )
    document: DocumentNode = draw(strategy)
    # Hypothesis leans towards small draws: 0 (the common case) prunes.
    if field_allowed is not None and draw(st.integers(min_value=0, max_value=4)) < 4:
        type_info = TypeInfo(schema)
        prune = _Prune(type_info, field_allowed, input_allowed or (lambda _: True))
        document = visit(document, TypeInfoVisitor(type_info, prune))
    return _finish(draw, schema, document, mutation)


def _finish(draw: Any, schema: GraphQLSchema, document: DocumentNode, mutation: bool) -> Operation:
    """Values into variables (sent, defaulted, or both), fragments and conditions."""
    [operation] = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    # Lift values into variables, driven by a drawn list of choices (0 keeps a literal).
    choices = draw(st.lists(st.integers(min_value=0, max_value=3), max_size=40))
    type_info = TypeInfo(schema)
    lift = _Lift(type_info, list(reversed(choices)))
    lifted = visit(operation, TypeInfoVisitor(type_info, lift))
    reshaped, fragments, conditions, flags = _reshape(lifted, schema, draw)
    final = OperationDefinitionNode(
        operation=reshaped.operation,
        name=NameNode(value=f"Generated{uuid.uuid4().hex[:8]}"),
        variable_definitions=(*lift.definitions, *conditions),
        directives=(),
        selection_set=reshaped.selection_set,
    )
    text = print_ast(DocumentNode(definitions=(final, *fragments)))
    return Operation(text, {**lift.variables, **flags}, mutation)


# Patient selections, PHI and not, nested: what a clinician's or biller's screen asks for.
PATIENT_FIELDS = (
    "id", "mrn", "givenName", "familyName", "dateOfBirth", "ssn", "phone", "email",
    "insurancePayer", "insuranceMemberId", "retentionClass", "createdAt",
    "address { line city state postalCode }", "address { city }",
    "diagnoses { id icd10Code description onsetDate }", "diagnoses { id }",
    "diagnoses { __typename recordedAt payerRestricted icd10Code }",
    "consents { consentType status }", "legalHold { active reason }",
    "consents { __typename id effectiveDate recordedAt }",
)  # fmt: skip
# Changes that pass the domain's own rules, one per PHI category and then some.
PATIENT_CHANGES = (
    'phone: "+16175550142"', 'email: "generated@example.test"', 'givenName: "Kilo"',
    'familyName: "Synthetic-Generated"', 'insurancePayer: "Example Payer (synthetic)"',
    'insuranceMemberId: "XMP-G0000001"', 'ssn: "987-65-4329"', 'dateOfBirth: "1975-05-05"',
    'address: {line: "2 Generated Way", city: "Testville", state: "MA", postalCode: "02115"}',
    'addDiagnoses: [{icd10Code: "Z00.00", description: "Generated (synthetic)"}]',
    "retentionClass: STANDARD", "phone: null",
)  # fmt: skip


@st.composite
def patient_operations(
    draw: Any,
    schema: GraphQLSchema,
    *,
    patient_ids: Sequence[str],
    mutation: bool,
    field_allowed: Callable[[str], bool] | None = None,
    input_allowed: Callable[[str], bool] | None = None,
    planned_only: bool = False,
) -> Operation:
    """Operations that reach patients' PHI by every root that leads there, with valid
    values, so that most of them execute (hypothesis-graphql's values mostly fail the
    domain's rules). ``planned_only``: only roots and fields that plans cover."""
    choices = list(PATIENT_FIELDS)  # plans cover every one of them
    fields = " ".join(draw(st.lists(st.sampled_from(choices), min_size=1, max_size=6)))
    patient = draw(st.sampled_from(list(patient_ids)))
    if mutation:
        changes = ", ".join(
            draw(st.lists(st.sampled_from(PATIENT_CHANGES), min_size=1, max_size=4, unique=True))
        )
        root = draw(
            st.sampled_from(
                [
                    f'patientUpdate(input: {{id: "{patient}", {changes}}}) {{ patient {{ {fields} }} }}',
                    f'consentRecord(input: {{patientId: "{patient}", consentType: TREATMENT,'
                    f' status: GRANTED, effectiveDate: "2020-01-01"}}) {{ patient {{ {fields} }} }}',
                ]
            )
        )
        text = f"mutation {{ {root} }}"
    else:
        first = draw(st.integers(min_value=1, max_value=15))
        roots = [
            f"patients(first: {first}) {{ edges {{ node {{ {fields} }} }} }}",
            f'patient(id: "{patient}") {{ {fields} }}',
            f"breaches {{ id affectedPatients {{ {fields} }} }}",
            'patientsByIdentifier(mrn: "DEMO-000001") { ' + fields + " }",
        ]
        if planned_only:
            roots = roots[:2]
        chosen = draw(st.lists(st.sampled_from(roots), min_size=1, max_size=2, unique=True))
        aliased = [f"r{n}: {root}" for n, root in enumerate(chosen)]
        text = "query { " + " ".join(aliased) + " }"
    document = graphql.parse(text, no_location=True)
    if field_allowed is not None and draw(st.integers(min_value=0, max_value=4)) < 4:
        type_info = TypeInfo(schema)
        prune = _Prune(type_info, field_allowed, input_allowed or (lambda _: True))
        document = visit(document, TypeInfoVisitor(type_info, prune))
    return _finish(draw, schema, document, mutation)
