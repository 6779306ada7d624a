from __future__ import annotations

import re
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from domain.patients import MRN_CHOICE_RULE
from domain.purposes import Purpose
from domain.roles import Role
from tests.conftest import count_rows
from tests.graph.queries import CREATE_PATIENT, GET_PATIENT, UPDATE_PATIENT, patient_input
from tests.graphql_client import GraphQLClient


async def create(gql: GraphQLClient, **overrides: object) -> dict:
    return (await gql(CREATE_PATIENT, {"input": patient_input(**overrides)})).ok()["patientCreate"][
        "patient"
    ]


async def test_create_then_read_a_patient(clinician: GraphQLClient) -> None:
    created = await create(clinician)
    assert re.fullmatch(r"PG-[0-9A-F]{10}", created["mrn"])  # assigned by phigate
    assert created["address"] == {
        "line": "1 Synthetic Way",
        "city": "Testville",
        "state": "MA",
        "postalCode": "02115",
    }
    assert [d["icd10Code"] for d in created["diagnoses"]] == ["E11.9"]  # normalised
    assert created["retentionClass"] == "STANDARD"
    assert created["legalHold"] == {"active": False, "reason": None, "setAt": None}
    assert created["createdAt"].endswith("Z")

    fetched = (await clinician(GET_PATIENT, {"id": created["id"]})).ok()["patient"]
    assert fetched == created


async def test_update_changes_only_the_fields_given(clinician: GraphQLClient) -> None:
    created = await create(clinician)
    updated = (
        await clinician(
            UPDATE_PATIENT, {"input": {"id": created["id"], "phone": "+16175550199", "email": None}}
        )
    ).ok()["patientUpdate"]["patient"]
    assert updated["phone"] == "+16175550199"
    assert updated["email"] is None  # null clears an optional field
    assert updated["givenName"] == created["givenName"]
    assert updated["ssn"] == created["ssn"]
    assert updated["updatedAt"] >= created["updatedAt"]


async def test_update_address_null_clears_it_and_diagnoses_can_be_added_and_removed(
    clinician: GraphQLClient,
) -> None:
    created = await create(clinician)
    first = created["diagnoses"][0]["id"]
    updated = (
        await clinician(
            UPDATE_PATIENT,
            {
                "input": {
                    "id": created["id"],
                    "address": None,
                    "addDiagnoses": [{"icd10Code": "I10"}],
                    "removeDiagnosisIds": [first],
                }
            },
        )
    ).ok()["patientUpdate"]["patient"]
    assert updated["address"] is None
    assert [d["icd10Code"] for d in updated["diagnoses"]] == ["I10"]


async def test_required_fields_cannot_be_nulled(clinician: GraphQLClient) -> None:
    created = await create(clinician)
    response = await clinician(
        UPDATE_PATIENT, {"input": {"id": created["id"], "givenName": None, "mrn": None}}
    )
    assert response.codes == ["BAD_USER_INPUT"]
    fields = {f["field"] for f in response.errors[0]["extensions"]["fields"]}
    assert fields == {"input.givenName", "input.mrn"}  # not null, and not theirs to choose


async def test_a_caller_limited_to_a_care_team_cannot_probe_mrns(
    clinician: GraphQLClient, service: Any, admin_engine: AsyncEngine
) -> None:
    """An MRN in use outside the care team would answer CONFLICT and a free one succeed:
    a clinician learns which exist. So a care-team-limited caller may not choose an MRN
    at all (the same refusal whether or not it exists), and phigate assigns one."""
    registrar = await service("patients:write", "patients:read", purpose=Purpose.TREATMENT)
    existing = (
        await registrar(CREATE_PATIENT, {"input": patient_input(mrn="DEMO-T00001", ssn=None)})
    ).ok()["patientCreate"]["patient"]
    assert existing["mrn"] == "DEMO-T00001"
    taken = await clinician(CREATE_PATIENT, {"input": patient_input(mrn="DEMO-T00001")})
    free = await clinician(CREATE_PATIENT, {"input": patient_input(mrn="DEMO-T99999")})
    for response in (taken, free):
        assert response.codes == ["BAD_USER_INPUT"] and response.data is None
        assert response.errors[0]["extensions"]["fields"] == [
            {"field": "input.mrn", "rule": MRN_CHOICE_RULE}
        ]
    assert taken.errors[0]["message"] == free.errors[0]["message"]
    assert await count_rows(admin_engine, "patients") == 1


async def test_duplicate_mrn_is_a_conflict_for_a_caller_who_reaches_everyone(
    service: Any, admin_engine: AsyncEngine
) -> None:
    registrar = await service("patients:write", "patients:read", purpose=Purpose.TREATMENT)
    first = await registrar(CREATE_PATIENT, {"input": patient_input(mrn="DEMO-T00001")})
    first.ok()
    response = await registrar(
        CREATE_PATIENT, {"input": patient_input(mrn="DEMO-T00001", ssn=None)}
    )
    assert response.codes == ["CONFLICT"]
    assert "input.mrn" in response.errors[0]["message"]
    assert response.data is None
    assert await count_rows(admin_engine, "patients") == 1
    assert await count_rows(admin_engine, "diagnoses") == 1


async def test_record_consent(clinician: GraphQLClient) -> None:
    created = await create(clinician)
    mutation = """mutation($input: ConsentRecordInput!) { consentRecord(input: $input) {
        consent { consentType status effectiveDate } patient { consents { consentType status } } } }"""
    for status in ("GRANTED", "REVOKED"):
        result = (
            await clinician(
                mutation,
                {
                    "input": {
                        "patientId": created["id"],
                        "consentType": "RESEARCH",
                        "status": status,
                        "effectiveDate": "2026-01-15",
                    }
                },
            )
        ).ok()["consentRecord"]
        assert result["consent"] == {
            "consentType": "RESEARCH",
            "status": status,
            "effectiveDate": "2026-01-15",
        }
    assert [c["status"] for c in result["patient"]["consents"]] == ["GRANTED", "REVOKED"]


async def test_cursor_pagination_walks_every_patient_once(gql: GraphQLClient, seeded: int) -> None:
    query = "query($after: String) { patients(first: 7, after: $after) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }"
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        page = (await gql(query, {"after": after})).ok()["patients"]
        seen += [edge["node"]["id"] for edge in page["edges"]]
        pages += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
        assert after == page["edges"][-1]["cursor"]
    assert len(seen) == len(set(seen)) == seeded
    assert pages == -(-seeded // 7)


async def test_cursors_carry_no_phi(as_role, seeded: int) -> None:
    import base64

    billing = await as_role(Role.BILLING, Purpose.PAYMENT)
    page = (
        await billing("{ patients(first: 3) { edges { cursor node { mrn familyName } } } }")
    ).ok()["patients"]
    for edge in page["edges"]:
        decoded = base64.urlsafe_b64decode(edge["cursor"] + "==").decode()
        assert edge["node"]["mrn"] not in decoded
        assert edge["node"]["familyName"] not in decoded


async def test_a_failed_mutation_in_a_document_rolls_back_the_others(
    clinician: GraphQLClient, app_engine, admin_engine
) -> None:
    document = """mutation($a: PatientCreateInput!, $b: PatientCreateInput!) {
        first: patientCreate(input: $a) { patient { id } }
        second: patientCreate(input: $b) { patient { id } } }"""
    response = await clinician(
        document,
        {
            "a": patient_input(),
            "b": patient_input(ssn="000-00-0000"),
        },
    )
    assert response.codes == ["BAD_USER_INPUT"]
    assert response.data is None
    assert await count_rows(admin_engine, "patients") == 0
