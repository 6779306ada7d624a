"""Legal holds, hard deletion on request, and the retention run: nothing held is ever
deleted, everything deleted is audited first in the same transaction."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.visibility import OwnerConnectionRequired
from resolvers.retention import run_retention
from tests.conftest import count_rows
from tests.graph.queries import CREATE_PATIENT, patient_input
from tests.graphql_client import GraphQLClient

HOLD = """mutation($input: LegalHoldInput!) {
  legalHoldSet(input: $input) { patient { id legalHold { active reason setAt } } }
}"""
RELEASE = """mutation($input: LegalHoldInput!) {
  legalHoldRelease(input: $input) { patient { id legalHold { active } } }
}"""
DELETE = """mutation($input: PatientDeleteInput!) {
  patientDelete(input: $input) { deletedId reason }
}"""
HISTORY = "query($id: ID!) { legalHoldHistory(patientId: $id) { action reason actorId } }"
REASON = "Litigation hold, matter 2026-CV-0001"


async def register(clinician: GraphQLClient) -> str:
    created = await clinician(CREATE_PATIENT, {"input": patient_input()})
    return created.ok()["patientCreate"]["patient"]["id"]


async def audit_rows(engine: AsyncEngine, where: str, **params: object) -> list[dict]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(f"SELECT * FROM audit.events WHERE {where} ORDER BY id"),
            params,
        )
        return [dict(row._mapping) for row in rows]


async def test_a_held_record_cannot_be_deleted_until_released(
    gql: GraphQLClient, clinician: GraphQLClient, app_engine: AsyncEngine, admin_engine: AsyncEngine
) -> None:
    patient_id = await register(clinician)
    held = (await gql(HOLD, {"input": {"patientId": patient_id, "reason": REASON}})).ok()
    assert held["legalHoldSet"]["patient"]["legalHold"]["active"] is True
    again = await gql(HOLD, {"input": {"patientId": patient_id, "reason": REASON}})
    assert again.errors[0]["extensions"]["fields"] == [
        {"field": "input.patientId", "rule": "is already on legal hold"}
    ]
    short = await gql(RELEASE, {"input": {"patientId": patient_id, "reason": "done"}})
    assert short.errors[0]["extensions"]["fields"][0]["field"] == "input.reason"

    refused = await gql(DELETE, {"input": {"id": patient_id, "reason": "PATIENT_REQUEST"}})
    assert refused.codes == ["BAD_USER_INPUT"]
    assert "legal hold" in refused.errors[0]["message"]
    assert await count_rows(admin_engine, "patients") == 1

    (
        await gql(RELEASE, {"input": {"patientId": patient_id, "reason": "Matter settled 2026-11"}})
    ).ok()
    history = (await gql(HISTORY, {"id": patient_id})).ok()["legalHoldHistory"]
    assert [(h["action"], h["reason"]) for h in history] == [
        ("SET", REASON),
        ("RELEASED", "Matter settled 2026-11"),
    ]
    assert all(h["actorId"] for h in history)

    by_api = await gql(DELETE, {"input": {"id": patient_id, "reason": "RETENTION_EXPIRED"}})
    assert by_api.codes == ["BAD_USER_INPUT"]
    not_allowed = await clinician(
        DELETE, {"input": {"id": patient_id, "reason": "PATIENT_REQUEST"}}
    )
    assert not_allowed.data is None and not_allowed.codes

    response = await gql.http.post(
        "/graphql",
        json={
            "query": DELETE,
            "variables": {"input": {"id": patient_id, "reason": "PATIENT_REQUEST"}},
        },
        headers=gql.headers,
    )
    assert response.json()["data"]["patientDelete"] == {
        "deletedId": patient_id,
        "reason": "PATIENT_REQUEST",
    }
    for table in ("patients", "diagnoses", "care_team_members", "legal_hold_events"):
        assert await count_rows(admin_engine, table) == 0, table
    [deleted] = await audit_rows(
        app_engine, "action = 'DELETE' AND request_id = :rid", rid=response.headers["x-request-id"]
    )
    assert [str(r) for r in deleted["record_ids"]] == [patient_id]
    assert (deleted["outcome"], deleted["reason"], deleted["field_path"]) == (
        "ALLOWED",
        "PATIENT_REQUEST",
        "Patient",
    )
    notes = await audit_rows(app_engine, "action LIKE 'LEGAL_HOLD_%'")
    assert [(n["action"], n["record_id"]) for n in notes] == [
        ("LEGAL_HOLD_SET", patient_id),
        ("LEGAL_HOLD_RELEASED", patient_id),
    ]


async def test_the_retention_run_deletes_only_unheld_expired_records(
    clinician: GraphQLClient, gql: GraphQLClient, app_engine: AsyncEngine, admin_engine: AsyncEngine
) -> None:
    old, held, minor, recent = [await register(clinician) for n in range(4)]
    (await gql(HOLD, {"input": {"patientId": held, "reason": REASON}})).ok()
    async with admin_engine.begin() as connection:
        await connection.execute(
            text(
                "UPDATE phigate.patients SET updated_at = now() - interval '3000 days'"
                " WHERE id = ANY(CAST(:ids AS uuid[]))"
            ),
            {"ids": [old, held, minor]},
        )
        await connection.execute(
            text(
                "UPDATE phigate.patients SET retention_class = 'MINOR',"
                " date_of_birth = current_date - interval '10 years' WHERE id = :id"
            ),
            {"id": minor},
        )
    base = {"actor_id": "cli:test", "actor_kind": "SYSTEM", "request_id": "retention-test"}
    now = datetime.now(UTC)
    # The retention run is the schema owner's, as `phigate retention run` runs it; the
    # application role on its own sees no patient row, and is refused.
    with pytest.raises(OwnerConnectionRequired):
        await run_retention(app_engine, days=2555, now=now, dry_run=True, audit_base=base)
    dry = await run_retention(
        admin_engine, days=2555, now=now, dry_run=True, audit_base=base, batch=1
    )
    assert (dry.examined, dry.expired, dry.deleted) == (2, 1, 0)  # held is never a candidate
    assert dry.kept_by_class == {"MINOR": 1}
    assert await count_rows(admin_engine, "patients") == 4

    done = await run_retention(admin_engine, days=2555, now=now, dry_run=False, audit_base=base)
    assert (done.expired, done.deleted) == (1, 1)
    async with admin_engine.connect() as connection:
        left = set(
            (await connection.execute(text("SELECT id::text FROM phigate.patients"))).scalars()
        )
    assert left == {held, minor, recent}
    [entry] = await audit_rows(app_engine, "reason = 'RETENTION_EXPIRED'")
    assert [str(r) for r in entry["record_ids"]] == [old]
    assert (entry["action"], entry["actor_id"]) == ("DELETE", "cli:test")
