"""Recording: one entry per (patient, PHI field) resolved, with who, what, when, where
and why, never the value; fail closed when the audit store refuses."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.models import AuditEvent
from domain.purposes import Purpose
from domain.roles import Role
from tests.conftest import AsRole, count_rows
from tests.graph.queries import CREATE_PATIENT, patient_input
from tests.graphql_client import GraphQLClient

READ = """query Chart($a: ID!, $b: ID!) {
  first: patient(id: $a) { id givenName ssn address { state } diagnoses { icd10Code } consents { status } }
  second: patient(id: $b) { ...Bits }
}
fragment Bits on Patient { id givenName ssn address { state } diagnoses { icd10Code } }"""


EXPANDED = (
    "SELECT e.*, r.record AS entry_record FROM audit.events e, LATERAL unnest("
    " CASE WHEN cardinality(e.record_ids) > 0 THEN e.record_ids::text[]"
    " ELSE ARRAY[e.record_id] END) WITH ORDINALITY AS r(record, ordinal)"
)


async def entries(engine: AsyncEngine, **where: str) -> list[dict]:
    """Logical entries, one per (record, field): a stored row lists its records."""
    clause = " AND ".join(f"e.{column} = :{column}" for column in where) or "true"
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(EXPANDED + f" WHERE e.category = 'ACCESS' AND {clause} ORDER BY e.id, r.ordinal"),
            where,
        )
        found = []
        for row in rows:
            entry = dict(row._mapping)
            entry["record_id"] = entry.pop("entry_record")
            found.append(entry)
        return found


async def register(clinician: GraphQLClient) -> str:
    return (await clinician(CREATE_PATIENT, {"input": patient_input()})).ok()["patientCreate"][
        "patient"
    ]["id"]


async def test_every_phi_field_resolved_is_one_entry_per_patient(
    clinician: GraphQLClient, app_engine: AsyncEngine
) -> None:
    a, b = await register(clinician), await register(clinician)
    response = await clinician(
        READ, {"a": a, "b": b}, headers={"User-Agent": "synthetic-frontend/1.0"}
    )
    response.ok()
    read = await entries(app_engine, action="READ", request_id=response.headers["x-request-id"])
    assert {(e["record_id"], e["field_path"], e["data_class"]) for e in read} == {
        (patient, field, cls)
        for patient in (a, b)
        for field, cls in (
            ("Patient.givenName", "IDENTITY"),
            ("Patient.ssn", "IDENTIFIER"),
            ("Address.state", "CONTACT"),
            ("Diagnosis.icd10Code", "CLINICAL"),
        )
    }
    assert len(read) == 8  # no entry for ids or consent (not PHI), one per (patient, field)
    entry = read[0]
    assert (
        entry["outcome"] == "ALLOWED"
        and entry["role"] == "CLINICIAN"
        and entry["purpose"] == "TREATMENT"
    )
    assert entry["actor_kind"] == "USER" and uuid.UUID(entry["actor_id"]) and entry["session_id"]
    assert (
        entry["operation_name"] == "Chart"
        and entry["document_hash"] == hashlib.sha256(READ.encode()).hexdigest()
    )
    assert entry["client_ip"] == "203.0.113.7" and entry["user_agent"] == "synthetic-frontend/1.0"
    assert entry["break_glass"] is False and entry["occurred_at"].tzinfo is not None
    assert "987-65-4320" not in str(read) and "Alpha" not in str(read)


async def test_lists_and_nested_edges_are_recorded_per_patient(
    as_role: AsRole, clinician: GraphQLClient, app_engine: AsyncEngine
) -> None:
    ids = [await register(clinician) for n in range(3)]
    billing = await as_role(Role.BILLING, Purpose.PAYMENT)
    response = await billing("{ patients(first: 2) { edges { node { mrn } } } }")
    listed = [e for e in await entries(app_engine, request_id=response.headers["x-request-id"])]
    assert len(listed) == 2 and {e["field_path"] for e in listed} == {"Patient.mrn"}
    assert {e["record_id"] for e in listed} < set(ids)


async def test_writes_record_the_fields_written_not_their_values(
    clinician: GraphQLClient, app_engine: AsyncEngine
) -> None:
    patient_id = await register(clinician)
    update = "mutation($i: PatientUpdateInput!) { patientUpdate(input: $i) { patient { id } } }"
    response = await clinician(
        update,
        {"i": {"id": patient_id, "phone": "+16175550142", "email": "other.synthetic@example.test"}},
    )
    response.ok()
    written = await entries(app_engine, action="WRITE", request_id=response.headers["x-request-id"])
    assert {(e["field_path"], e["data_class"], e["record_id"]) for e in written} == {
        ("PatientUpdateInput.phone", "CONTACT", patient_id),
        ("PatientUpdateInput.email", "CONTACT", patient_id),
    }
    assert "+16175550142" not in str(written)


async def test_break_glass_reads_are_flagged(
    as_role: AsRole, clinician: GraphQLClient, app_engine: AsyncEngine
) -> None:
    patient_id = await register(clinician)
    other = await as_role(
        Role.CLINICIAN, Purpose.EMERGENCY, reason="Unresponsive on arrival (synthetic)"
    )
    response = await other("query($id: ID!) { patient(id: $id) { givenName } }", {"id": patient_id})
    response.ok()
    [entry] = await entries(app_engine, request_id=response.headers["x-request-id"])
    assert (
        entry["break_glass"] is True
        and entry["purpose"] == "EMERGENCY"
        and entry["record_id"] == patient_id
    )


async def test_a_refused_request_is_recorded_as_denied_with_the_fields_asked_for(
    as_role: AsRole, app_engine: AsyncEngine
) -> None:
    billing = await as_role(Role.BILLING, Purpose.PAYMENT)
    response = await billing("{ patients { edges { node { mrn diagnoses { icd10Code } } } } }")
    denied = await entries(app_engine, request_id=response.headers["x-request-id"])
    assert {(e["outcome"], e["field_path"], e["reason"]) for e in denied} == {
        ("DENIED", "Patient.diagnoses", "FORBIDDEN_FIELD"),
        ("DENIED", "Diagnosis.icd10Code", "FORBIDDEN_FIELD"),
    }


async def test_a_failed_mutation_records_its_attempt_as_error(
    clinician: GraphQLClient, app_engine: AsyncEngine
) -> None:
    patient_id = await register(clinician)
    update = "mutation($i: PatientUpdateInput!) { patientUpdate(input: $i) { patient { id } } }"
    response = await clinician(update, {"i": {"id": patient_id, "phone": "bad phone"}})
    assert response.codes == ["BAD_USER_INPUT"]
    attempted = await entries(app_engine, request_id=response.headers["x-request-id"])
    assert [(e["action"], e["outcome"], e["field_path"], e["record_id"]) for e in attempted] == [
        ("WRITE", "ERROR", "PatientUpdateInput.phone", None)
    ]


@pytest.fixture
async def audit_refuses_writes(admin_engine: AsyncEngine):
    """Make the audit store refuse the gateway's writes for the duration of a test."""

    async def refuse() -> None:
        async with admin_engine.begin() as connection:
            await connection.execute(text("REVOKE INSERT ON audit.events FROM phigate_app"))

    yield refuse
    # As migration 0017 grants it: every column but the id and the writing transaction's
    # id (a table-wide INSERT would let later tests' writers name txid).
    writable = [c.name for c in AuditEvent.__table__.columns if c.name not in ("id", "txid")]
    async with admin_engine.begin() as connection:
        await connection.execute(
            text(f"GRANT INSERT ({', '.join(writable)}) ON audit.events TO phigate_app")
        )
        assert not await connection.scalar(
            text("SELECT has_column_privilege('phigate_app', 'audit.events', 'txid', 'INSERT')")
        )


async def test_no_audit_no_phi(
    clinician: GraphQLClient, app_engine: AsyncEngine, audit_refuses_writes
) -> None:
    patient_id = await register(clinician)
    await audit_refuses_writes()
    response = await clinician(
        "query($id: ID!) { patient(id: $id) { givenName ssn } }", {"id": patient_id}
    )
    assert response.data is None
    assert response.codes == ["AUDIT_UNAVAILABLE"]
    assert "987-65-4320" not in response.raw and "Alpha" not in response.raw


async def test_no_audit_no_write(
    clinician: GraphQLClient,
    app_engine: AsyncEngine,
    audit_refuses_writes,
    admin_engine: AsyncEngine,
) -> None:
    await audit_refuses_writes()
    response = await clinician(CREATE_PATIENT, {"input": patient_input()})
    assert response.codes == ["AUDIT_UNAVAILABLE"] and response.data is None
    assert await count_rows(admin_engine, "patients") == 0
    assert await count_rows(admin_engine, "care_team_members") == 0


async def test_no_audit_no_login(client, user: dict, audit_refuses_writes) -> None:
    from tests.e2e.test_login import PASSWORD, code, login

    await audit_refuses_writes()
    response = await login(client, user["username"], PASSWORD, code(user["secret"]))
    assert response.status_code == 503
    assert "access_token" not in response.text
