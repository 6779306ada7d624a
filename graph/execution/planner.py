"""Plans: a read operation compiled once, run per request without graphql-core's
field-by-field resolution (the approach of Grafast and graphql-jit).

A plan is compiled by the executor from its own state (the operation, the fragments and
the coerced variables, through graphql-core's field collection), after the full path has
parsed, validated and decided that operation once. It holds, for each root field, the SQL
to run (only the columns selected, and those order and cursors need), and the writers
that assemble the response straight from the rows. It keeps the field nodes of every PHI
field it will write, so that each execution checks them against the request's decision
before writing a value (the runtime guard, for planned execution).

What is planned: queries of ``patients`` and ``patient`` selecting a patient's own fields
(its columns, its address, its legal hold, its encrypted identifiers), its diagnoses and
consents (read by the same statement, one array of each per patient), and
``__typename``. Anything else (a mutation, breaches...) has no plan and runs on the full
path. graphql-core stays the reference: a differential test compares both.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from cachetools import LRUCache
from graphql import GraphQLObjectType, GraphQLSchema, OperationType
from graphql.execution.collect_fields import (
    FieldDetails,
    FragmentDetails,
    collect_fields,
    collect_subfields,
)
from graphql.execution.values import VariableValues
from graphql.language import OperationDefinitionNode

from db.patients import SEALED_COLUMNS, related_column
from domain.audit import document_hash
from domain.policy import PHI
from graph.classification import classify
from graph.enforcement.operation_access import shape
from graph.scalars import _serialize_datetime

FAMILIES = 2048
Writer = Callable[[Any, Any], Any]  # (row, request context) -> JSON value


def _text(column: str) -> Writer:
    return lambda row, _: row[column]


def _date(column: str) -> Writer:
    def write(row: Any, _: Any) -> Any:
        value = row[column]
        return None if value is None else dt.date.isoformat(value)

    return write


def _datetime(column: str) -> Writer:
    def write(row: Any, _: Any) -> Any:
        value = row[column]
        return None if value is None else _serialize_datetime(value)

    return write


def _sealed(column: str, field: str) -> Writer:
    def write(row: Any, context: Any) -> Any:
        return context.require_cipher().open("patients", field, str(row["id"]), row[column])

    return write


# Patient's own fields: the columns each needs and how its value is written. Values are
# written as Strawberry serializes them (strings as they are, dates ISO-8601, instants in
# UTC with Z, enums by their names, which equal their stored values).
PATIENT_FIELDS: dict[str, tuple[tuple[str, ...], Writer]] = {
    "id": (("id",), lambda row, _: str(row["id"])),
    "mrn": (("mrn",), _text("mrn")),
    "givenName": (("given_name",), _text("given_name")),
    "familyName": (("family_name",), _text("family_name")),
    "dateOfBirth": (("date_of_birth",), _date("date_of_birth")),
    "phone": (("phone",), _text("phone")),
    "email": (("email",), _text("email")),
    "insurancePayer": (("insurance_payer",), _text("insurance_payer")),
    "retentionClass": (("retention_class",), _text("retention_class")),
    "createdAt": (("created_at",), _datetime("created_at")),
    "updatedAt": (("updated_at",), _datetime("updated_at")),
    "ssn": (("ssn_sealed",), _sealed("ssn_sealed", "ssn")),
    "insuranceMemberId": (
        ("insurance_member_id_sealed",),
        _sealed("insurance_member_id_sealed", "insurance_member_id"),
    ),
}
ADDRESS_FIELDS = {
    "line": "address_line",
    "city": "address_city",
    "state": "address_state",
    "postalCode": "address_postal_code",
}
# A diagnosis's and a consent's fields: the column each needs from its table (each
# written from that column's value as Strawberry writes Diagnosis and Consent).
RELATED_FIELDS: dict[str, dict[str, str]] = {
    "Diagnosis": {
        "id": "id",
        "icd10Code": "icd10_code",
        "onsetDate": "onset_date",
        "recordedAt": "recorded_at",
        "payerRestricted": "payer_restricted",
        "description": "description_sealed",
    },
    "Consent": {
        "id": "id",
        "consentType": "consent_type",
        "status": "status",
        "effectiveDate": "effective_date",
        "recordedAt": "recorded_at",
    },
}
RELATIONS = {"diagnoses": "Diagnosis", "consents": "Consent"}
LEGAL_HOLD_FIELDS: dict[str, tuple[str, Writer]] = {
    "active": ("legal_hold", _text("legal_hold")),
    "reason": ("legal_hold_reason", _text("legal_hold_reason")),
    "setAt": ("legal_hold_set_at", _datetime("legal_hold_set_at")),
}


class Unplannable(Exception):
    """The operation selects something plans do not cover: it runs on the full path."""


@dataclass(frozen=True, slots=True)
class Output:
    """One key of a response object: its writer, and (PHI only) the node the guard
    checks before the value is written."""

    key: str
    write: Writer
    phi_node: int | None = None


@dataclass(frozen=True, slots=True)
class Shape:
    """What is read and written for each patient selected."""

    columns: tuple[str, ...]
    outputs: tuple[Output, ...]

    def write(self, row: Any, context: Any) -> dict[str, Any]:
        return {output.key: output.write(row, context) for output in self.outputs}


@dataclass(frozen=True, slots=True)
class Root:
    """One root field of the operation."""

    key: str
    kind: str  # "typename", "patients" or "patient"
    field: Any = None  # the GraphQLField, for its arguments
    details: Any = None  # graphql-core's FieldDetails of the root field
    patient: Shape | None = None
    # patients: the keys of the connection, its edges and its page info, in order.
    connection: tuple[tuple[str, str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Plan:
    roots: tuple[Root, ...]
    phi_nodes: frozenset[int]
    # It reads diagnoses: for a purpose a patient's payer restriction applies to, the full
    # path answers (it leaves restricted diagnoses out and records that it did).
    diagnoses: bool = False
    # It opens encrypted values (an SSN, a member id, a diagnosis's description): one that
    # does not open fails the request after the read, so the read must not have committed
    # its own audit entries (the full path answers, and records, the request then).
    sealed: bool = False


@dataclass
class Family:
    """One document's operation: its plans by the shape of the coerced variables."""

    operation: OperationDefinitionNode
    fragments: dict[str, FragmentDetails]
    plans: dict[Hashable, Plan | None]
    # The document's SHA-256, as the audit entries record it: hashed once, not per request.
    # Only right because a family is keyed by the exact text the caller sent: a key that
    # normalised the document would have to hash each request's text again.
    document_hash: str


class Plans:
    """Plans per (document, operation name), learnt by the full path and run by
    graph/execution/planned.py. Bounded; an evicted one is learnt again."""

    def __init__(self, entries: int = FAMILIES) -> None:
        self._families: LRUCache[tuple[str, str | None], Family] = LRUCache(entries)
        self.compiled = 0
        self.executed = 0  # requests answered by a plan (tests and benchmarks read it)
        # ... of them, those whose session the read's own statement checked (one round trip).
        self.checked = 0

    def family(self, document: str, operation_name: str | None) -> Family | None:
        return self._families.get((document, operation_name))

    def learn(
        self,
        schema: GraphQLSchema,
        operation_name: str | None,
        operation: OperationDefinitionNode,
        fragments: dict[str, FragmentDetails],
        variable_values: VariableValues,
    ) -> None:
        if operation.loc is None:
            return
        key = (operation.loc.source.body, operation_name)
        family = self._families.get(key)
        if family is None:
            family = self._families[key] = Family(
                operation, fragments, {}, document_hash(operation.loc.source.body)
            )
        variables = shape(variable_values.coerced)
        if variables in family.plans:
            return
        try:
            plan: Plan | None = compile_plan(schema, operation, fragments, variable_values)
            self.compiled += 1
        except Unplannable:
            plan = None
        family.plans[variables] = plan


PLANS = Plans()


def compile_plan(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: dict[str, FragmentDetails],
    variable_values: VariableValues,
) -> Plan:
    if operation.operation is not OperationType.QUERY or operation.directives:
        raise Unplannable
    root_type = schema.query_type
    assert root_type is not None
    collected = collect_fields(schema, fragments, variable_values, root_type, operation)
    if collected.new_defer_usages:
        raise Unplannable
    phi: set[int] = set()
    compiler = _Compiler(schema, fragments, variable_values, operation, phi)
    for grouped in collected.grouped_field_set.values():
        _plain(grouped)
    roots = tuple(
        compiler.root(key, details) for key, details in collected.grouped_field_set.items()
    )
    return Plan(roots, frozenset(phi), compiler.diagnoses, compiler.sealed)


class _Compiler:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDetails],
        variable_values: VariableValues,
        operation: OperationDefinitionNode,
        phi: set[int],
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variable_values
        self.operation = operation
        self.phi = phi
        self.classes = classify(schema)
        self.diagnoses = False
        self.sealed = False

    def sub(self, type_name: str, details: list[FieldDetails]) -> dict[str, list[FieldDetails]]:
        runtime = self.schema.get_type(type_name)
        assert isinstance(runtime, GraphQLObjectType)
        collected = collect_subfields(
            self.schema, self.fragments, self.variables, self.operation, runtime, details
        )
        if collected.new_defer_usages:
            raise Unplannable
        for grouped in collected.grouped_field_set.values():
            _plain(grouped)
        return collected.grouped_field_set

    def root(self, key: str, details: list[FieldDetails]) -> Root:
        name = details[0].node.name.value
        if name == "__typename":
            return Root(key, "typename")
        query_type = self.schema.query_type
        assert query_type is not None
        if name == "patient":
            shape_ = self.patient(self.sub("Patient", details))
            return Root(key, "patient", query_type.fields[name], details[0], shape_)
        if name == "patients":
            return self.connection(key, query_type.fields[name], details)
        raise Unplannable

    def connection(self, key: str, field: Any, details: list[FieldDetails]) -> Root:
        parts: list[tuple[str, str, Any]] = []
        patient: Shape | None = None
        for sub_key, sub_details in self.sub("PatientConnection", details).items():
            name = sub_details[0].node.name.value
            if name == "__typename":
                parts.append((sub_key, "typename", "PatientConnection"))
            elif name == "pageInfo":
                info = []
                for info_key, info_details in self.sub("PageInfo", sub_details).items():
                    info_name = info_details[0].node.name.value
                    if info_name not in ("hasNextPage", "endCursor", "__typename"):
                        raise Unplannable
                    info.append((info_key, info_name))
                parts.append((sub_key, "pageInfo", tuple(info)))
            elif name == "edges":
                edge = []
                for edge_key, edge_details in self.sub("PatientEdge", sub_details).items():
                    edge_name = edge_details[0].node.name.value
                    if edge_name == "node":
                        node = self.patient(self.sub("Patient", edge_details))
                        patient = _merge(patient, node)
                        edge.append((edge_key, "node", node))
                    elif edge_name in ("cursor", "__typename"):
                        edge.append((edge_key, edge_name, None))
                    else:
                        raise Unplannable
                parts.append((sub_key, "edges", tuple(edge)))
            else:
                raise Unplannable
        return Root(key, "patients", field, details[0], patient or Shape((), ()), tuple(parts))

    def _phi(self, type_name: str, field: str, details: list[FieldDetails]) -> int | None:
        if self.classes.field(type_name, field).data_class not in PHI:
            return None
        node = details[0].node
        position = node.loc.start if node.loc else -1
        self.phi.add(position)
        return position

    def patient(self, grouped: Mapping[str, list[FieldDetails]]) -> Shape:
        columns: list[str] = []
        outputs: list[Output] = []
        for key, details in grouped.items():
            name = details[0].node.name.value
            if name == "__typename":
                outputs.append(Output(key, _constant("Patient")))
            elif name in PATIENT_FIELDS:
                needed, write = PATIENT_FIELDS[name]
                columns.extend(needed)
                self.sealed = self.sealed or not SEALED_COLUMNS.isdisjoint(needed)
                outputs.append(Output(key, write, self._phi("Patient", name, details)))
            elif name == "address":
                columns.extend(ADDRESS_FIELDS.values())
                inner = []
                for inner_key, inner_details in self.sub("Address", details).items():
                    inner_name = inner_details[0].node.name.value
                    if inner_name == "__typename":
                        inner.append(Output(inner_key, _constant("Address")))
                    else:
                        column = ADDRESS_FIELDS[inner_name]
                        node = self._phi("Address", inner_name, inner_details)
                        inner.append(Output(inner_key, _text(column), node))
                outputs.append(
                    Output(key, _address(tuple(inner)), self._phi("Patient", name, details))
                )
            elif name == "legalHold":
                inner = []
                for inner_key, inner_details in self.sub("LegalHold", details).items():
                    inner_name = inner_details[0].node.name.value
                    if inner_name == "__typename":
                        inner.append(Output(inner_key, _constant("LegalHold")))
                    else:
                        column, write = LEGAL_HOLD_FIELDS[inner_name]
                        columns.append(column)
                        inner.append(Output(inner_key, write))
                outputs.append(Output(key, _object(tuple(inner))))
            elif name in RELATIONS:
                column, write = self.related(name, details)
                columns.append(column)
                outputs.append(Output(key, write, self._phi("Patient", name, details)))
            else:
                raise Unplannable
        # Sorted: rows are read by column name, and selections that differ only in order
        # share one compiled statement.
        return Shape(tuple(sorted(set(columns))), tuple(outputs))

    def related(self, relation: str, details: list[FieldDetails]) -> tuple[str, Writer]:
        """A patient's diagnoses or consents: the column that carries them
        (``related_column``) and the writer of the list."""
        type_name = RELATIONS[relation]
        fields = RELATED_FIELDS[type_name]
        self.diagnoses = self.diagnoses or relation == "diagnoses"
        wanted = ["id"]
        inner: list[tuple[str, str, int | None]] = []  # (key, field, PHI node)
        for inner_key, inner_details in self.sub(type_name, details).items():
            inner_name = inner_details[0].node.name.value
            if inner_name != "__typename":
                if inner_name not in fields:
                    raise Unplannable  # a field added to the type since: the full path
                wanted.append(fields[inner_name])
                self.sealed = self.sealed or fields[inner_name] in SEALED_COLUMNS
            inner.append((inner_key, inner_name, self._phi(type_name, inner_name, inner_details)))
        # In the table's order (``id`` first), whatever the selection's.
        columns = tuple(column for column in fields.values() if column in wanted)
        outputs = tuple(
            Output(key, _related_field(type_name, name, columns), node) for key, name, node in inner
        )
        column = related_column(relation, columns)

        def write(row: Any, context: Any) -> Any:
            records = row[column] or ()
            return [{o.key: o.write(record, context) for o in outputs} for record in records]

        return column, write


def _plain(details: list[FieldDetails]) -> None:
    """Fields as collection left them: @skip/@include were applied there; any other
    directive, or fragment arguments, are not for plans."""
    for detail in details:
        if detail.fragment_variable_values is not None:
            raise Unplannable
        if any(d.name.value not in ("skip", "include") for d in detail.node.directives or ()):
            raise Unplannable


def _constant(value: str) -> Writer:
    return lambda _row, _context: value


def _related_field(type_name: str, name: str, columns: tuple[str, ...]) -> Writer:
    """A writer of one field of a diagnosis's or consent's record (``columns``' values,
    ``id`` first)."""
    if name == "__typename":
        return _constant(type_name)
    at = columns.index(RELATED_FIELDS[type_name][name])
    if name == "id":
        return lambda record, _: str(record[at])
    if name in ("onsetDate", "effectiveDate"):
        return lambda record, _: None if record[at] is None else dt.date.isoformat(record[at])
    if name == "recordedAt":
        return lambda record, _: _serialize_datetime(record[at])
    if name == "description":
        return lambda record, context: context.require_cipher().open(
            "diagnoses", "description", str(record[0]), record[at]
        )
    return lambda record, _: record[at]  # text, booleans, enums (stored as their names)


def _object(outputs: tuple[Output, ...]) -> Writer:
    def write(row: Any, context: Any) -> Any:
        return {output.key: output.write(row, context) for output in outputs}

    return write


def _address(outputs: tuple[Output, ...]) -> Writer:
    """As Patient.from_row: no address when all four parts are empty."""

    def write(row: Any, context: Any) -> Any:
        if not any(row[column] for column in ADDRESS_FIELDS.values()):
            return None
        return {output.key: output.write(row, context) for output in outputs}

    return write


def _merge(a: Shape | None, b: Shape) -> Shape:
    """Columns for two node selections of one connection (aliased edges, say)."""
    if a is None:
        return b
    return Shape(tuple(sorted({*a.columns, *b.columns})), a.outputs)
