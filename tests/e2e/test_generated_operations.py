"""Differential, property-based: generated operations against the real app and database,
comparing what was authorized, what executed, and what was audited.

Operations come from hypothesis-graphql (every query and mutation of the schema), with
values moved into variables, variable defaults, fragments and @skip/@include added by
tests/generated.py. Each runs over HTTP for a caller drawn from every role and purpose
(and no purpose), every OAuth2 scope, and anonymous. An observer extension records what
execution actually resolved (PHI fields, with the record each belongs to) and what PHI
inputs mutations actually received. For every operation:

* a refused operation resolved nothing and wrote nothing, and left no ALLOWED entry;
* every PHI field resolved, and every PHI input a mutation received, is one the caller's
  role may read or write for its purpose (the policy, read independently of the gateway);
* every PHI field resolved is in the audit trail with its record's id, and every PHI
  input of a mutation that went through is a WRITE entry with the record it changed;
* nothing answers INTERNAL_ERROR or ENFORCEMENT_FAILED.

Bounded for CI (PHIGATE_FUZZ_EXAMPLES, 300 a test by default, seeded with
PHIGATE_FUZZ_SEED); set PHIGATE_FUZZ_EXAMPLES=3000 for a long run.
"""

from __future__ import annotations

import inspect
import itertools
import json
import os
import uuid
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import httpx
import pytest
from graphql import IntValueNode, StringValueNode, Visitor, get_named_type, parse, print_ast, visit
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from strawberry.extensions import SchemaExtension

from db.engine import DatabaseTarget
from domain.policy import PHI, bundled_policy
from domain.principals import Human, Service
from domain.purposes import Purpose
from domain.roles import Role, ServiceScope
from graph.classification import classify
from graph.http.app import create_app, engine_of, identity_of
from graph.schema import build_schema
from graph.schema import schema as served_schema
from graph.settings import Settings
from tests.conftest import FAST_HASHING, TEST_KEYS
from tests.e2e.served import SUMMARY
from tests.generated import Operation, operations, patient_operations
from tests.identity import issue_token, service_token

EXAMPLES = int(os.environ.get("PHIGATE_FUZZ_EXAMPLES", "300"))
SEED = int(os.environ.get("PHIGATE_FUZZ_SEED", "20261202"))
POLICY = bundled_policy()
REASON = "Generated emergency access for a property test (synthetic)"
DENIALS = {
    "FORBIDDEN_FIELD",
    "FORBIDDEN_OPERATION",
    "PURPOSE_REQUIRED",
    "PURPOSE_NOT_ALLOWED",
    "PURPOSE_UNKNOWN",
    "BREAK_GLASS_REASON_REQUIRED",
    "UNCLASSIFIED_FIELD",
}

# request id -> what execution did: ("READ", coordinate, record) and ("INPUT", coordinate, None)
OBSERVED: dict[str, list[tuple[str, str, uuid.UUID | None]]] = {}


class Observer(SchemaExtension):
    """Watches every field as graphql-core resolves it (test only: it costs per field)."""

    def __init__(self, *, execution_context: Any = None) -> None:
        super().__init__(execution_context=execution_context)
        self.owner: dict[int, uuid.UUID] = {}

    def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        seen = OBSERVED.setdefault(info.context.meta.request_id, [])
        schema = info.schema
        parent = info.parent_type.name
        coordinate = f"{parent}.{info.field_name}"
        classes = classify(schema)
        for received in _phi_inputs(schema, classes, parent, info.field_name, kwargs):
            seen.append(("INPUT", received, None))
        record = getattr(root, "row_id", None) or self.owner.get(id(root))
        phi = classes.field(parent, info.field_name).data_class in PHI

        def done(value: Any) -> Any:
            if phi and value is not None:
                seen.append(("READ", coordinate, record))
            for item in value if isinstance(value, list) else [value]:
                if not isinstance(item, str | int | float | bool | date | datetime | type(None)):
                    own = getattr(item, "row_id", None) or record
                    if own is not None:
                        self.owner[id(item)] = own
            return value

        result = _next(root, info, *args, **kwargs)
        if inspect.isawaitable(result):

            async def later() -> Any:
                return done(await result)

            return later()
        return done(result)


def _phi_inputs(
    schema: Any, classes: Any, parent: str, field_name: str, arguments: dict[str, Any]
) -> Iterator[str]:
    """PHI arguments and input fields present in what a resolver received: written for
    this test, apart from the gateway's own walks."""
    field = schema.type_map[parent].fields.get(field_name)
    if field is None:  # __typename
        return

    def walk(value: Any, input_type: Any) -> Iterator[str]:
        named = get_named_type(input_type)
        if isinstance(value, list):
            for item in value:
                yield from walk(item, named)
        elif isinstance(value, dict) and hasattr(named, "fields"):
            for name, item in value.items():
                if classes.input_field(named.name, name).data_class in PHI:
                    yield f"{named.name}.{name}"
                yield from walk(item, named.fields[name].type)

    for name, value in arguments.items():
        if classes.argument(parent, field_name, name).data_class in PHI:
            yield f"{parent}.{field_name}({name}:)"
        yield from walk(value, field.args[name].type)


@pytest.fixture
def settings_() -> Settings:
    return Settings(
        **TEST_KEYS,
        **FAST_HASHING,
        rate_limit_graphql="1000000/minute",
        rate_limit_anonymous="1000000/minute",
    )


@pytest.fixture
async def app(settings_: Settings, app_target: DatabaseTarget) -> Any:
    observed = build_schema(observers=[Observer])
    application = create_app(settings_, target=app_target, schema=observed)
    yield application
    await engine_of(application).dispose()


Subject = tuple[str, Human | Service | None, dict[str, str]]


@pytest.fixture
async def subjects(app: Starlette, seeded: int, admin_engine: AsyncEngine) -> list[Subject]:
    """Callers: a user of every role (clinicians and nurses on some patients' care team),
    a service holding each scope, and nobody."""
    identity = identity_of(app)
    found: list[Subject] = []
    for role in Role:
        token = await issue_token(identity, role)
        claims = await identity.tokens.verify(token, now=datetime.now().astimezone())
        found.append(
            (
                role.value,
                Human(user_id=claims["sub"], role=role, session_id=claims["sid"]),
                {"Authorization": f"Bearer {token}"},
            )
        )
        if role in (Role.CLINICIAN, Role.NURSE):
            async with admin_engine.begin() as connection:
                await connection.execute(
                    text(
                        "INSERT INTO phigate.care_team_members (patient_id, user_id)"
                        " SELECT id, :u FROM phigate.patients ORDER BY id LIMIT 12"
                    ),
                    {"u": claims["sub"]},
                )
    for scope in ServiceScope:
        token = await service_token(identity, (scope.value,))
        found.append(
            (
                scope.value,
                Service(client_id="generated", scopes=frozenset({scope})),
                {"Authorization": f"Bearer {token}"},
            )
        )
    return [*found, ("anonymous", None, {})]


@pytest.fixture
async def known_ids(subjects: list[Subject], admin_engine: AsyncEngine) -> list[str]:
    """Ids for generated arguments: first the patients on the care teams (which every
    patient reader reaches), then the other patients, breaches, BAAs, diagnoses, users."""
    async with admin_engine.connect() as connection:
        rows = await connection.execute(
            text(
                "(SELECT id::text FROM phigate.patients ORDER BY id LIMIT 12) UNION ALL"
                " (SELECT id::text FROM phigate.patients ORDER BY id OFFSET 12) UNION ALL"
                " SELECT id::text FROM phigate.breach_incidents UNION ALL"
                " SELECT id::text FROM phigate.baas UNION ALL"
                " SELECT id::text FROM phigate.diagnoses UNION ALL"
                " SELECT id::text FROM phigate.users"
            )
        )
        return list(rows.scalars())


_requests = itertools.count()
# What the generated operations came to, for the long run's report (and this module's
# own check that it exercised more than refusals).
OUTCOMES: dict[str, int] = {}


def _tally(outcome: str) -> None:
    OUTCOMES[outcome] = OUTCOMES.get(outcome, 0) + 1


async def _audit(engine: AsyncEngine, request_id: str) -> list[Any]:
    async with engine.connect() as connection:
        return list(
            await connection.execute(
                text(
                    "SELECT category, action, outcome, field_path, record_ids"
                    " FROM audit.events WHERE request_id = :r"
                ),
                {"r": request_id},
            )
        )


def _grant(principal: Human | Service | None) -> Any:
    return POLICY.grant(principal) if principal is not None else None


def _covered(coordinate: str, rows: list[Any], *, action: str, schema: Any, record: Any) -> bool:
    """An entry for this coordinate, or (a PHI container) for the type beneath it."""
    type_name, _, field_name = coordinate.partition(".")
    field_name = field_name.split("(")[0]
    definition = schema.type_map[type_name].fields[field_name]
    beneath = get_named_type(definition.type).name + "."
    return any(
        row.action == action
        and row.outcome == "ALLOWED"
        and (row.field_path == coordinate or (row.field_path or "").startswith(beneath))
        and (record is None or record in row.record_ids)
        for row in rows
    )


async def _check(
    operation: Operation,
    subject: Subject,
    purpose: Purpose | None,
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    schema: Any,
) -> None:
    label, principal, headers = subject
    request_id = f"generated-{next(_requests)}"
    headers = {**headers, "X-Request-ID": request_id}
    if purpose is not None:
        headers["X-Purpose-Of-Use"] = purpose.value
        if purpose is Purpose.EMERGENCY:
            headers["X-Break-Glass-Reason"] = REASON
    response = await client.post(
        "/graphql",
        json={"query": operation.document, "variables": operation.variables},
        headers=headers,
    )
    seen = OBSERVED.pop(request_id, [])
    context = f"{label} {purpose} {operation.document} {operation.variables}"
    if principal is None:
        assert response.status_code == 401, context
        assert seen == [], context
        _tally("anonymous")
        return
    assert response.status_code == 200, context
    body = response.json()
    codes = {error["extensions"]["code"] for error in body.get("errors") or []}
    assert not codes & {"INTERNAL_ERROR", "ENFORCEMENT_FAILED"}, (codes, context)
    rows = await _audit(engine, request_id)
    if codes & DENIALS:
        # Refused before execution: nothing resolved, nothing written, nothing disclosed.
        assert body["data"] is None, context
        assert seen == [], (seen, context)
        assert not any(row.outcome == "ALLOWED" for row in rows), context
        _tally("refused")
        return
    grant = _grant(principal)
    readable, writable = grant.readable(purpose), grant.writable(purpose)
    classes = classify(schema)
    for kind, coordinate, _record in seen:
        type_name, _, rest = coordinate.partition(".")
        if kind == "READ":
            data_class = classes.field(type_name, rest).data_class
            assert data_class in readable, (coordinate, context)
        else:
            name = rest.split("(")[0]
            data_class = (
                classes.argument(type_name, name, rest.split("(")[1].rstrip(":)"))
                if "(" in rest
                else classes.input_field(type_name, rest)
            ).data_class
            allowed = writable if operation.mutation else readable
            assert data_class in allowed, (coordinate, context)
    if body.get("data") is None:
        assert not any(row.outcome == "ALLOWED" for row in rows if row.category == "ACCESS")
        _tally("failed")
        return
    _tally("phi read" if any(kind == "READ" for kind, _, _ in seen) else "executed")
    if operation.mutation and not body.get("errors"):
        _tally("written" if any(kind == "INPUT" for kind, _, _ in seen) else "mutated")
    for kind, coordinate, record in seen:
        if kind == "READ":
            assert _covered(coordinate, rows, action="READ", schema=schema, record=record), (
                f"{coordinate} of {record} read but not audited",
                rows,
                context,
            )
        elif operation.mutation and not body.get("errors"):
            assert _covered(coordinate, rows, action="WRITE", schema=schema, record=None), (
                f"{coordinate} written but not audited",
                rows,
                context,
            )


PURPOSES = [None, *Purpose]
SCHEMA = served_schema._schema


@st.composite
def callers(draw: Any, subjects: list[Subject]) -> tuple[Subject, Purpose | None]:
    """A caller, and mostly a purpose its role may declare (sometimes none, or another)."""
    # Callers who may read some PHI come up three times as often as the others.
    readers = [s for s in subjects if s[1] is not None and any(
        _grant(s[1]).readable(p) & PHI for p in Purpose)]  # fmt: skip
    subject = draw(st.sampled_from([*readers, *readers, *subjects]))
    grant = _grant(subject[1])
    own: list[Purpose | None] = sorted(grant.purposes) if grant is not None else []
    if draw(st.integers(min_value=0, max_value=3)) < 3:
        return subject, draw(st.sampled_from(own or [None]))
    return subject, draw(st.sampled_from(PURPOSES))


def generated(subject: Subject, purpose: Purpose | None, ids: list[str], *, mutation: bool) -> Any:
    """Operations from hypothesis-graphql over the whole schema, mostly trimmed to what
    the caller may touch (so they also execute), and operations built to reach patients'
    PHI with valid values (so PHI is read and written)."""
    grant = _grant(subject[1])
    if grant is None:
        return st.one_of(
            operations(SCHEMA, ids=ids, mutation=mutation),
            patient_operations(SCHEMA, patient_ids=ids[:12], mutation=mutation),
        )
    classes = classify(SCHEMA)
    readable, writable = grant.readable(purpose), grant.writable(purpose)

    def field_allowed(coordinate: str) -> bool:
        type_name, _, name = coordinate.partition(".")
        if "(" in name:
            field, _, argument = name.partition("(")
            data_class = classes.argument(type_name, field, argument.rstrip(":)")).data_class
            return data_class in readable
        classification = classes.field(type_name, name)
        if (
            classification.permission is not None
            and classification.permission not in grant.permissions
        ):
            return False
        return classification.data_class in readable

    def input_allowed(coordinate: str) -> bool:
        type_name, _, name = coordinate.partition(".")
        data_class = classes.input_field(type_name, name).data_class
        return data_class == "PUBLIC" or data_class in (writable if mutation else readable)

    schema_ops = st.sampled_from([PATIENT_ROOTS, None]).flatmap(
        lambda roots: operations(
            SCHEMA,
            ids=ids,
            mutation=mutation,
            field_allowed=field_allowed,
            input_allowed=input_allowed,
            roots=roots,
        )
    )
    patient_ops = patient_operations(
        SCHEMA,
        patient_ids=ids[:12],
        mutation=mutation,
        field_allowed=field_allowed,
        input_allowed=input_allowed,
    )
    return st.one_of(patient_ops, schema_ops)


# Root fields that reach patients' PHI: half of the operations start from them.
PATIENT_ROOTS = (
    "patient",
    "patients",
    "patientsByIdentifier",
    "breach",
    "breaches",
    "patientCreate",
    "patientUpdate",
    "consentRecord",
    "legalHoldSet",
    "legalHoldRelease",
)


def _generated(mutation: bool) -> Any:
    return settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
        database=None,
    )


@seed(SEED)
@_generated(mutation=False)
@given(data=st.data())
async def test_generated_queries(
    data: st.DataObject,
    client: httpx.AsyncClient,
    subjects: list[Subject],
    known_ids: list[str],
    admin_engine: AsyncEngine,
    app: Starlette,
) -> None:
    subject, purpose = data.draw(callers(subjects))
    operation = data.draw(generated(subject, purpose, known_ids, mutation=False))
    await _check(operation, subject, purpose, client, admin_engine, SCHEMA)


@seed(SEED + 1)
@_generated(mutation=True)
@given(data=st.data())
async def test_generated_mutations(
    data: st.DataObject,
    client: httpx.AsyncClient,
    subjects: list[Subject],
    known_ids: list[str],
    admin_engine: AsyncEngine,
    app: Starlette,
) -> None:
    subject, purpose = data.draw(callers(subjects))
    operation = data.draw(generated(subject, purpose, known_ids, mutation=True))
    await _check(operation, subject, purpose, client, admin_engine, SCHEMA)


# Hostile values: the same generated operations with some of their strings, numbers,
# dates and times replaced by what an attacker sends. Every one is answered as a client
# error naming the field, or served; never INTERNAL_ERROR, never AUDIT_UNAVAILABLE.
UNSAFE_TEXT = ("\x00", "a\x00b", "\ud800", "x\udfffy")
ODD_TEXT = ("\x01\x1f\x7f", "\u202e\u200b", "'; DROP TABLE patients; --", "x" * 100_000, "")
EXTREME_INTS = (0, -1, 2**31 - 1, -(2**31), 2**31, -(2**31) - 1, 2**53 + 1, 10**30)
EXTREME_DATES = ("0001-01-01", "9999-12-31", "1899-12-31", "2200-01-01", "2024-02-30")
EXTREME_TIMES = (
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-12:00",
    "1899-12-31T23:59:59Z",
    "2026-13-01T00:00:00Z",
)
HOSTILE_OUTCOMES: dict[str, int] = {}


@st.composite
def hostile(draw: Any, operation: Operation) -> tuple[Operation, bool]:
    """The operation with some values replaced; and whether a replacement breaks the
    text rule (so the answer must be a client error)."""
    unsafe = False

    def replace(value: Any) -> Any:
        nonlocal unsafe
        if isinstance(value, bool) or draw(st.integers(min_value=0, max_value=2)) != 0:
            return value
        if isinstance(value, int):
            return draw(st.sampled_from(EXTREME_INTS))
        if isinstance(value, str):
            if len(value) >= 10 and value[4:5] == "-" and value[7:8] == "-":
                return draw(st.sampled_from(EXTREME_TIMES if "T" in value else EXTREME_DATES))
            chosen = draw(
                st.one_of(
                    st.sampled_from(UNSAFE_TEXT),
                    st.sampled_from(ODD_TEXT),
                    st.text(st.characters(codec=None, categories=None), max_size=20),
                )
            )
            unsafe = unsafe or any(c == "\x00" or 0xD800 <= ord(c) <= 0xDFFF for c in chosen)
            return chosen
        return value

    class Swap(Visitor):
        def enter_string_value(self, node: Any, *_: Any) -> Any:
            value = replace(node.value)
            return None if value == node.value else StringValueNode(value=value)

        def enter_int_value(self, node: Any, *_: Any) -> Any:
            value = replace(int(node.value))
            return None if value == int(node.value) else IntValueNode(value=str(value))

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: walk(item) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item) for item in value]
        return replace(value)

    document = print_ast(visit(parse(operation.document), Swap()))
    variables = walk(operation.variables)
    return Operation(document, variables, operation.mutation), unsafe


@seed(SEED + 2)
@_generated(mutation=True)
@given(data=st.data())
async def test_hostile_values_are_client_errors_never_internal_ones(
    data: st.DataObject,
    client: httpx.AsyncClient,
    subjects: list[Subject],
    known_ids: list[str],
    app: Starlette,
) -> None:
    subject, purpose = data.draw(callers([s for s in subjects if s[1] is not None]))
    mutation = data.draw(st.booleans())
    plain = data.draw(generated(subject, purpose, known_ids, mutation=mutation))
    operation, unsafe = data.draw(hostile(plain))
    headers = dict(subject[2])
    if purpose is not None:
        headers["X-Purpose-Of-Use"] = purpose.value
        if purpose is Purpose.EMERGENCY:
            headers["X-Break-Glass-Reason"] = REASON
    response = await client.post(
        "/graphql",
        content=json.dumps({"query": operation.document, "variables": operation.variables}),
        headers={**headers, "Content-Type": "application/json"},
    )
    context = f"{subject[0]} {purpose} {operation.document!r} {operation.variables!r}"
    assert response.status_code in (200, 400, 413), (response.status_code, context)
    assert response.headers.get("x-request-id") and response.headers.get("cache-control")
    body = response.json()
    codes = {error["extensions"]["code"] for error in body.get("errors") or []}
    assert not codes & {"INTERNAL_ERROR", "AUDIT_UNAVAILABLE", "ENFORCEMENT_FAILED"}, (
        codes,
        context,
    )
    if unsafe:
        client_errors = {
            "BAD_USER_INPUT",
            "GRAPHQL_PARSE_FAILED",
            "GRAPHQL_VALIDATION_FAILED",
            "BAD_REQUEST",
            "PAYLOAD_TOO_LARGE",
        }
        assert codes & client_errors, (codes, context)
        assert body.get("data") is None, context
    outcome = ",".join(sorted(codes)) or "served"
    HOSTILE_OUTCOMES[outcome] = HOSTILE_OUTCOMES.get(outcome, 0) + 1


def test_the_generated_operations_reached_data() -> None:
    """Runs after the two above (file order): they must have done more than refuse."""
    if not OUTCOMES:
        pytest.skip("run with the generated tests")
    print("generated operations:", OUTCOMES)
    assert OUTCOMES.get("refused", 0) > 0
    assert OUTCOMES.get("phi read", 0) > 0
    assert OUTCOMES.get("written", 0) > 0
    if HOSTILE_OUTCOMES:
        SUMMARY.append(
            "hostile values: "
            + ", ".join(f"{key}: {count}" for key, count in sorted(HOSTILE_OUTCOMES.items()))
        )
