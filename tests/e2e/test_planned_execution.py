"""Planned execution against graphql-core, the reference: for the same request, the
response and the audit entries are the same whether the operation ran through
graphql-core's resolution or through its plan.

Generated reads (patients and patient, with fields, aliases, fragments, variables and
their defaults, @skip/@include) run over HTTP for callers of every role and purpose:
with plans switched off (graphql-core answers, and the plan is learnt), then again
with them off (the reference), then on. PHIGATE_FUZZ_EXAMPLES (default 300 here too) sets how many.
"""

from __future__ import annotations

import itertools
import os
from collections import Counter
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from domain.policy import bundled_policy
from domain.principals import Human
from domain.purposes import Purpose
from domain.roles import Role
from graph.classification import classify
from graph.execution import planner
from graph.execution.planned import PlannedEndpoint
from graph.execution.planner import PLANS
from graph.schema import schema as served
from tests.conftest import AsRole
from tests.generated import operations, patient_operations
from tests.graph.queries import CREATE_PATIENT, patient_input

EXAMPLES = int(os.environ.get("PHIGATE_FUZZ_EXAMPLES", "300"))
SCHEMA = served._schema
CALLERS = [
    (Role.CLINICIAN, Purpose.TREATMENT),
    (Role.CLINICIAN, Purpose.EMERGENCY),
    (Role.NURSE, Purpose.TREATMENT),
    (Role.BILLING, Purpose.PAYMENT),
    (Role.COMPLIANCE_OFFICER, Purpose.COMPLIANCE),
    (Role.BILLING, None),
]
_ids = itertools.count()
RAN_PLANNED: list[bool] = []  # per generated example: whether the second run was planned
# ... and whether the planned run checked the session in its own statement (a person's
# token whose session was checked before: graph/http/authentication.Deferred).
RAN_CHECKED: list[bool] = []
FALLBACKS: Counter[str] = Counter()


def readable_by(role: Role, purpose: Purpose | None) -> Any:
    """What the caller may select, from the policy: generated reads are mostly trimmed
    to it (the rest are refused, on both paths alike)."""
    grant = bundled_policy().grant(Human(user_id="x", role=role, session_id=None))
    readable = grant.readable(purpose)
    classes = classify(SCHEMA)

    def allowed(coordinate: str) -> bool:
        type_name, _, name = coordinate.partition(".")
        if "(" in name:
            field, _, argument = name.partition("(")
            return classes.argument(type_name, field, argument.rstrip(":)")).data_class in readable
        classification = classes.field(type_name, name)
        permission = classification.permission
        return (permission is None or permission in grant.permissions) and (
            classification.data_class in readable
        )

    return allowed


def endpoint(app: Starlette) -> PlannedEndpoint:
    [found] = [route.app for route in app.routes if getattr(route, "path", "") == "/graphql"]
    assert isinstance(found, PlannedEndpoint)
    return found


@pytest.fixture
async def callers(as_role: AsRole, seeded: int, admin_engine: AsyncEngine) -> list[Any]:
    made = []
    for role, purpose in CALLERS:
        caller = await as_role(
            role, purpose, reason="Generated emergency (synthetic)" if purpose else None
        )
        made.append(caller)
    async with admin_engine.begin() as connection:  # clinicians and nurses: a care team
        await connection.execute(
            text(
                "INSERT INTO phigate.care_team_members (patient_id, user_id)"
                " SELECT p.id, u.id FROM phigate.patients p, phigate.users u"
                " WHERE u.role IN ('CLINICIAN', 'NURSE') AND p.id IN"
                " (SELECT id FROM phigate.patients ORDER BY id LIMIT 8)"
                " ON CONFLICT DO NOTHING"
            )
        )
    return made


@pytest.fixture
async def patient_ids(callers: list[Any], admin_engine: AsyncEngine) -> list[str]:
    async with admin_engine.connect() as connection:
        return list(
            (
                await connection.execute(text("SELECT id::text FROM phigate.patients ORDER BY id"))
            ).scalars()
        )


def _normal(body: dict[str, Any]) -> dict[str, Any]:
    for error in body.get("errors") or []:
        error.get("extensions", {}).pop("requestId", None)
    return body


async def _entries(engine: AsyncEngine, request_id: str) -> list[tuple[Any, ...]]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT category, action, outcome, actor_id, role, purpose, break_glass,"
                " break_glass_episode_id, operation_name, document_hash, field_path, data_class,"
                " record_ids, reason FROM audit.events WHERE request_id = :r"
            ),
            {"r": request_id},
        )
        return sorted(
            (tuple(str(v) if isinstance(v, list) else v for v in row) for row in rows), key=str
        )


async def test_a_repeated_read_runs_its_plan_and_answers_the_same(
    as_role: AsRole, seeded: int, admin_engine: AsyncEngine
) -> None:
    billing = await as_role(Role.BILLING, Purpose.PAYMENT)
    document = (
        "query Page($n: Int = 5) { patients(first: $n) { edges { cursor node { id mrn"
        " givenName familyName dateOfBirth insurancePayer insuranceMemberId __typename }"
        " } pageInfo { hasNextPage endCursor } } }"
    )
    before = PLANS.executed
    first = (await billing(document, headers={"X-Request-ID": "plan-first"})).ok()
    second = await billing(document, headers={"X-Request-ID": "plan-second"})
    assert PLANS.executed == before + 1  # the first learnt the plan, the second ran it
    assert first == second.ok()
    assert len(second.data["patients"]["edges"]) == 5
    one = await _entries(admin_engine, "plan-first")
    two = await _entries(admin_engine, "plan-second")
    assert len(one) == len(two)
    for a, b in zip(one, two, strict=True):
        for x, y in zip(a, b, strict=True):
            assert x == y, (x, y)


@pytest.mark.parametrize(
    ("document", "statements_sent"),
    [
        # The session check, the page, each patient's diagnoses and consents and the
        # audit entries: one statement.
        (
            "query Page($n: Int = 6) { patients(first: $n) { edges { node { id familyName"
            " diagnoses { __typename id icd10Code onsetDate recordedAt payerRestricted }"
            " dx: diagnoses { id } consents { __typename id consentType status"
            " effectiveDate recordedAt } } } } }",
            1,
        ),
        # Encrypted descriptions: in the request's transaction (the check, then the read
        # with its audit entries), so that a value that does not open rolls them back.
        ('query One { patient(id: "@ID@") { id diagnoses { id icd10Code description } } }', 2),
    ],
    ids=["page", "one"],
)
async def test_a_read_of_diagnoses_and_consents_runs_its_plan(
    document: str,
    statements_sent: int,
    service: Any,
    seeded: int,
    patient_ids: list[str],
    admin_engine: AsyncEngine,
    statements: Any,
) -> None:
    """A patient's diagnoses (encrypted descriptions included) and consents come from the
    plan's statement, exactly as graphql-core answers and audits them."""
    reader = await service("patients:read", purpose=Purpose.TREATMENT)
    document = document.replace("@ID@", patient_ids[0])
    first = await reader(document, headers={"X-Request-ID": f"dx-learn-{len(document)}"})
    before, sent = PLANS.executed, statements.count
    second = await reader(document, headers={"X-Request-ID": f"dx-planned-{len(document)}"})
    assert PLANS.executed == before + 1
    assert statements.count - sent == statements_sent
    assert first.ok() == second.ok()
    read = [d for node in _patients_of(second.data) for d in node["diagnoses"]]
    assert read, "no diagnosis was read"
    if "description" in document:
        assert any(d["description"] for d in read), "no description was opened"
    if "consents" in document:
        assert any(node["consents"] for node in _patients_of(second.data)), "no consent read"
    one = await _entries(admin_engine, f"dx-learn-{len(document)}")
    two = await _entries(admin_engine, f"dx-planned-{len(document)}")
    assert "Diagnosis.icd10Code" in {row[10] for row in two}
    assert one == two


def _patients_of(data: dict[str, Any]) -> list[dict[str, Any]]:
    if "patient" in data:
        return [data["patient"]]
    return [edge["node"] for edge in data["patients"]["edges"]]


@seed(int(os.environ.get("PHIGATE_FUZZ_SEED", "20261203")))
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
@given(data=st.data())
async def test_planned_and_graphql_core_execution_agree(
    data: st.DataObject,
    client: httpx.AsyncClient,
    callers: list[Any],
    patient_ids: list[str],
    admin_engine: AsyncEngine,
    app: Starlette,
) -> None:
    index = data.draw(st.integers(min_value=0, max_value=len(callers) - 1))
    caller, (role, purpose) = callers[index], CALLERS[index]
    allowed = readable_by(role, purpose)
    operation = data.draw(
        st.one_of(
            patient_operations(
                SCHEMA,
                patient_ids=patient_ids[:10],
                mutation=False,
                field_allowed=allowed,
                planned_only=True,
            ),
            operations(
                SCHEMA,
                ids=patient_ids[:10],
                mutation=False,
                roots=("patients", "patient"),
                field_allowed=allowed,
            ),
        )
    )
    planned = endpoint(app)
    answers = []
    before, checked = PLANS.executed, PLANS.checked
    # Three runs: the first learns the plan (and changes what it changes: a break-glass
    # episode opened, say); the second and third see the same state, one through
    # graphql-core, one through the plan.
    for enabled in (False, False, True):
        planned.enabled = enabled
        request_id = f"differential-{next(_ids)}"
        response = await caller(
            operation.document, operation.variables, headers={"X-Request-ID": request_id}
        )
        answers.append((response.status, _normal(response.body), request_id))
    planned.enabled = True
    RAN_PLANNED.append(PLANS.executed > before)
    RAN_CHECKED.append(PLANS.checked > checked)
    FALLBACKS.update(planned.fallbacks)
    planned.fallbacks.clear()
    _, (status_a, body_a, id_a), (status_b, body_b, id_b) = answers
    context = f"{caller.headers.get('X-Purpose-Of-Use')} {operation.document} {operation.variables}"
    assert (status_a, body_a) == (status_b, body_b), context
    assert await _entries(admin_engine, id_a) == await _entries(admin_engine, id_b), context


def test_the_generated_reads_ran_planned() -> None:
    """Runs after the one above (file order): most generated reads must have had plans,
    or the comparison compared nothing."""
    if not RAN_PLANNED:
        pytest.skip("run with the generated test")
    print(
        f"planned: {sum(RAN_PLANNED)} of {len(RAN_PLANNED)}, session checked by the read's"
        f" own statement: {sum(RAN_CHECKED)}; full path: {dict(FALLBACKS)}"
    )
    assert sum(RAN_PLANNED) >= len(RAN_PLANNED) // 4
    # People's reads are most of them: the one-statement path is compared too.
    assert sum(RAN_CHECKED) >= sum(RAN_PLANNED) // 2


@pytest.mark.parametrize("field", ["description", "ssn"])
async def test_a_sealed_value_that_does_not_open_is_audited_once_when_planned(
    as_role: AsRole, admin_engine: AsyncEngine, field: str
) -> None:
    """A value whose ciphertext does not open (tampering, a lost key) fails the planned
    read after the database read it. The read's statement must not have committed its
    audit entries alone before that (the full path then answers and records the request
    again: each access counted twice in the accounting of disclosures)."""
    clinician = await as_role(Role.CLINICIAN, Purpose.TREATMENT)
    created = await clinician(
        CREATE_PATIENT,
        {"input": patient_input(diagnoses=[{"icd10Code": "I10", "description": "Synthetic"}])},
    )
    patient = created.ok()["patientCreate"]["patient"]["id"]
    async with (
        admin_engine.begin() as connection
    ):  # the schema owner, as an attacker with disk access
        if field == "description":
            await connection.execute(
                text(
                    "UPDATE phigate.diagnoses SET description_sealed = '\\x0102030405'::bytea"
                    " WHERE patient_id = :p"
                ),
                {"p": patient},
            )
            document = (
                f'query D {{ patient(id: "{patient}") {{ id diagnoses {{ id description }} }} }}'
            )
        else:
            await connection.execute(
                text(
                    "UPDATE phigate.patients SET ssn_sealed = '\\x0102030405'::bytea WHERE id = :p"
                ),
                {"p": patient},
            )
            document = f'query S {{ patient(id: "{patient}") {{ id ssn }} }}'
    learnt = await clinician(document, headers={"X-Request-ID": f"sealed-{field}-learn"})
    again = await clinician(document, headers={"X-Request-ID": f"sealed-{field}-again"})
    assert _normal(learnt.body) == _normal(again.body)
    assert "DATA_INTEGRITY" in str(learnt.body), learnt.body
    one = await _entries(admin_engine, f"sealed-{field}-learn")
    two = await _entries(admin_engine, f"sealed-{field}-again")
    assert one, "the full path recorded nothing"
    assert two == one


async def test_a_plan_that_fails_hands_the_request_to_the_full_path(
    as_role: AsRole, admin_engine: AsyncEngine, app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A defect in a plan (here: a writer that raises) is not the caller's problem: the
    request's transaction rolls back, graphql-core answers it as it would have, and the
    audit trail records it once."""
    clinician = await as_role(Role.CLINICIAN, Purpose.TREATMENT)
    created = await clinician(CREATE_PATIENT, {"input": patient_input()})
    patient = created.ok()["patientCreate"]["patient"]["id"]
    # An encrypted value keeps the read in the request's transaction (not one statement).
    document = f'query F {{ patient(id: "{patient}") {{ id ssn createdAt }} }}'
    learnt = await clinician(document, headers={"X-Request-ID": "defect-learn"})

    def broken(_value: object) -> str:
        raise RuntimeError("a defect in a writer")

    monkeypatch.setattr(planner, "_serialize_datetime", broken)
    again = await clinician(document, headers={"X-Request-ID": "defect-again"})
    assert again.status == 200
    assert again.ok() == learnt.ok()
    assert endpoint(app).fallbacks["error"] == 1  # the plan ran, and failed
    one = await _entries(admin_engine, "defect-learn")
    assert one
    assert await _entries(admin_engine, "defect-again") == one
