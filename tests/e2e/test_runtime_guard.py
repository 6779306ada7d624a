"""The second line of defence, proven to fire: the decision is deliberately weakened (a
test double drops a field from what it sees), and the runtime guard, where the value is
used, must still stop the request: no data, writes rolled back, an ERROR entry and a
security event naming the coordinate, never a value. Over HTTP, as a caller sees it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.purposes import Purpose
from domain.roles import Role
from graph.enforcement import authorization
from graph.settings import Settings
from tests.conftest import FAST_HASHING, TEST_KEYS, AsRole
from tests.graph.queries import CREATE_PATIENT, patient_input
from tests.graphql_client import GraphQLClient


@pytest.fixture
def settings() -> Settings:
    return Settings(**TEST_KEYS, **FAST_HASHING, max_depth=3)


@pytest.fixture
def blind_to(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Make the decision blind to one schema coordinate (a defect the guard must catch)."""
    authorization.DECISIONS.clear()
    original = authorization.accesses

    def weaken(coordinate: str) -> None:
        def accesses(*args: Any, **kwargs: Any) -> list[Any]:
            return [a for a in original(*args, **kwargs) if a.coordinate != coordinate]

        monkeypatch.setattr(authorization, "accesses", accesses)

    yield weaken
    authorization.DECISIONS.clear()


async def _entries(engine: AsyncEngine, request_id: str) -> list[dict[str, Any]]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT category, action, outcome, field_path, reason, record_ids"
                " FROM audit.events WHERE request_id = :r ORDER BY id"
            ),
            {"r": request_id},
        )
        return [dict(row._mapping) for row in rows]


async def _register(clinician: GraphQLClient) -> str:
    created = await clinician(CREATE_PATIENT, {"input": patient_input()})
    return created.ok()["patientCreate"]["patient"]["id"]


async def test_a_phi_field_the_decision_missed_is_never_returned(
    clinician: GraphQLClient, blind_to: Any, admin_engine: AsyncEngine
) -> None:
    await _register(clinician)
    blind_to("Patient.ssn")
    response = await clinician(
        "{ patients { edges { node { id givenName ssn } } } }",
        headers={"X-Request-ID": "guard-read-1"},
    )
    assert response.data is None
    assert response.codes == ["ENFORCEMENT_FAILED"]
    assert "987-65-4320" not in response.raw and "Alpha" not in response.raw
    entries = await _entries(admin_engine, "guard-read-1")
    stopped = [e for e in entries if e["reason"] == "ENFORCEMENT_GUARD"]
    assert [(e["action"], e["outcome"], e["field_path"]) for e in stopped] == [
        ("READ", "ERROR", "Patient.ssn")
    ]
    [event] = [e for e in entries if e["category"] == "SECURITY"]
    assert (event["action"], event["outcome"], event["field_path"]) == (
        "ENFORCEMENT_GUARD_TRIPPED",
        "ERROR",
        "Patient.ssn",
    )
    # What was read before the guard stopped the request is an ERROR attempt, not a
    # disclosure: nothing left.
    assert {e["outcome"] for e in entries if e["category"] == "ACCESS"} == {"ERROR"}


async def test_a_phi_input_the_decision_missed_is_never_written(
    clinician: GraphQLClient, blind_to: Any, admin_engine: AsyncEngine
) -> None:
    patient_id = await _register(clinician)
    blind_to("PatientUpdateInput.phone")
    response = await clinician(
        "mutation($i: PatientUpdateInput!) { patientUpdate(input: $i) { patient { id } } }",
        {"i": {"id": patient_id, "phone": "+15555550199", "email": "changed@example.test"}},
        headers={"X-Request-ID": "guard-write-1"},
    )
    assert response.data is None
    assert response.codes == ["ENFORCEMENT_FAILED"]
    async with admin_engine.connect() as connection:
        phone, email = (
            await connection.execute(
                text("SELECT phone, email FROM phigate.patients WHERE id = :id"), {"id": patient_id}
            )
        ).one()
    assert (phone, email) == ("+16175550100", "synthetic.test@example.test")  # rolled back
    entries = await _entries(admin_engine, "guard-write-1")
    assert ("WRITE", "ERROR", "PatientUpdateInput.phone") in {
        (e["action"], e["outcome"], e["field_path"])
        for e in entries
        if e["reason"] == "ENFORCEMENT_GUARD"
    }
    assert "ENFORCEMENT_GUARD_TRIPPED" in {e["action"] for e in entries}
    assert not any(e["outcome"] == "ALLOWED" and e["action"] == "WRITE" for e in entries)


async def test_a_phi_argument_the_decision_missed_is_never_used(
    as_role: AsRole, blind_to: Any, admin_engine: AsyncEngine
) -> None:
    clinician = await as_role(Role.CLINICIAN, Purpose.TREATMENT)
    await _register(clinician)
    blind_to("Query.patientsByIdentifier(ssn:)")
    response = await clinician(
        'query { patientsByIdentifier(ssn: "987-65-4320") { id } }',
        headers={"X-Request-ID": "guard-argument-1"},
    )
    assert response.data is None
    assert response.codes == ["ENFORCEMENT_FAILED"]
    entries = await _entries(admin_engine, "guard-argument-1")
    assert "Query.patientsByIdentifier(ssn:)" in {e["field_path"] for e in entries}


async def test_without_a_defect_the_guard_never_fires(
    clinician: GraphQLClient, admin_engine: AsyncEngine
) -> None:
    await _register(clinician)
    response = await clinician(
        "{ patients { edges { node { id ssn phone } } } }",
        headers={"X-Request-ID": "guard-none-1"},
    )
    assert response.ok()["patients"]["edges"][0]["node"]["ssn"] == "987-65-4320"
    entries = await _entries(admin_engine, "guard-none-1")
    assert not any(e["reason"] == "ENFORCEMENT_GUARD" for e in entries)


@pytest.mark.parametrize(
    ("document", "limit"),
    [
        ("{ patients { edges { node { address { city } } } } }", "DEPTH"),
        ("{ " + " ".join(f"a{n}: __typename" for n in range(20)) + " }", "ALIASES"),
        ("{ " + "__typename @include(if: true) " * 60 + "}", "DIRECTIVES"),
        (
            "{ "
            + " ".join(
                f"p{n}: patients(first: 100) {{ edges {{ node {{ id mrn givenName }} }} }}"
                for n in range(9)
            )
            + " }",
            "COST",
        ),
    ],
)
async def test_query_limit_refusals_are_security_events(
    clinician: GraphQLClient, admin_engine: AsyncEngine, document: str, limit: str
) -> None:
    response = await clinician(document, headers={"X-Request-ID": f"limit-{limit}"})
    assert response.codes == ["LIMIT_EXCEEDED"]
    entries = await _entries(admin_engine, f"limit-{limit}")
    assert [(e["category"], e["action"], e["outcome"], e["reason"]) for e in entries] == [
        ("SECURITY", "QUERY_LIMIT_EXCEEDED", "DENIED", limit)
    ]
