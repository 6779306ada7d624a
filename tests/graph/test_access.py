"""Minimum necessary and row-level access, end to end over HTTP."""

from __future__ import annotations

import uuid

import pytest
from graphql import GraphQLInputObjectType, get_named_type
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.purposes import Purpose
from domain.roles import Role
from graph.enforcement import authorization
from graph.schema import schema
from tests.conftest import AsRole, StatementCounter, count_rows
from tests.graph.queries import CREATE_PATIENT, patient_input
from tests.graphql_client import GraphQLClient, GraphQLResponse

GET = "query($id: ID!) { patient(id: $id) { id givenName } }"
REASON = "Unconscious in the emergency department (synthetic)"


def without_request_id(response: GraphQLResponse) -> list[dict]:
    return [
        {**e, "extensions": {k: v for k, v in e["extensions"].items() if k != "requestId"}}
        for e in response.errors
    ]


async def register(clinician: GraphQLClient) -> str:
    return (await clinician(CREATE_PATIENT, {"input": patient_input()})).ok()["patientCreate"][
        "patient"
    ]["id"]


async def audit_rows(engine: AsyncEngine) -> list[dict]:
    async with engine.connect() as connection:
        return [
            dict(r._mapping)
            for r in await connection.execute(
                text("SELECT * FROM audit.events WHERE category = 'ACCESS' ORDER BY id")
            )
        ]


async def test_another_care_team_answers_exactly_like_a_missing_patient(
    as_role: AsRole, app_engine: AsyncEngine, admin_engine: AsyncEngine
) -> None:
    alice = await as_role(Role.CLINICIAN, Purpose.TREATMENT)
    bob = await as_role(Role.CLINICIAN, Purpose.TREATMENT)
    patient_id = await register(alice)
    assert (await alice(GET, {"id": patient_id})).ok()["patient"]["id"] == patient_id

    theirs = await bob(GET, {"id": patient_id})
    missing = await bob(GET, {"id": str(uuid.uuid4())})
    assert theirs.codes == ["NOT_FOUND"]
    assert without_request_id(theirs) == without_request_id(missing)
    assert (await bob("{ patients { edges { node { id } } } }")).ok()["patients"]["edges"] == []

    update = await bob(
        "mutation($i: PatientUpdateInput!) { patientUpdate(input: $i) { patient { id } } }",
        {"i": {"id": patient_id, "phone": "+16175550177"}},
    )
    consent = await bob(
        "mutation($i: ConsentRecordInput!) { consentRecord(input: $i) { consent { id } } }",
        {
            "i": {
                "patientId": patient_id,
                "consentType": "RESEARCH",
                "status": "GRANTED",
                "effectiveDate": "2026-01-01",
            }
        },
    )
    assert update.codes == consent.codes == ["NOT_FOUND"]
    assert await count_rows(admin_engine, "consents") == 0
    assert (await alice("query($id: ID!) { patient(id: $id) { phone } }", {"id": patient_id})).ok()[
        "patient"
    ]["phone"] == "+16175550100"


@pytest.mark.parametrize(
    ("purpose", "code"),
    [(None, "PURPOSE_REQUIRED"), ("GOSSIP", "PURPOSE_UNKNOWN"), ("PAYMENT", "PURPOSE_NOT_ALLOWED")],
)
async def test_phi_needs_a_declared_allowed_purpose(
    as_role: AsRole, app_engine: AsyncEngine, purpose: str | None, code: str
) -> None:
    registrar = await as_role(Role.CLINICIAN, Purpose.TREATMENT)
    patient_id = await register(registrar)
    caller = GraphQLClient(registrar.http, {**registrar.headers})
    caller.headers.pop("X-Purpose-Of-Use")
    if purpose:
        caller.headers["X-Purpose-Of-Use"] = purpose
    response = await caller("query($id: ID!) { patient(id: $id) { ssn } }", {"id": patient_id})
    assert response.data is None
    assert set(response.codes) == {code}
    assert "987-65-4320" not in response.raw
    denied = [row for row in await audit_rows(app_engine) if row["outcome"] == "DENIED"]
    assert denied and all(row["reason"] == code for row in denied)


async def test_billing_reads_identifiers_for_payment_but_never_clinical_data(
    as_role: AsRole, app_engine: AsyncEngine
) -> None:
    registrar = await as_role(Role.CLINICIAN, Purpose.TREATMENT)
    patient_id = await register(registrar)
    billing = await as_role(Role.BILLING, Purpose.PAYMENT)
    allowed = (
        await billing(
            "query($id: ID!) { patient(id: $id) { mrn ssn familyName insuranceMemberId } }",
            {"id": patient_id},
        )
    ).ok()
    assert allowed["patient"]["ssn"] == "987-65-4320"
    refused = await billing(
        "query($id: ID!) { patient(id: $id) { mrn ...Clinical x: address { state } } } fragment Clinical on Patient { diagnoses { icd10Code } }",
        {"id": patient_id},
    )
    assert refused.data is None
    assert {e["extensions"]["field"] for e in refused.errors} == {
        "Patient.diagnoses",
        "Diagnosis.icd10Code",
        "Patient.address",
        "Address.state",
    }
    assert "role BILLING may not read CLINICAL data for PAYMENT" in refused.raw
    assert {e["extensions"]["path"] for e in refused.errors} >= {
        "patient.diagnoses.icd10Code",
        "patient.x.state",
    }
    fields = {row["field_path"] for row in await audit_rows(app_engine)}
    assert {"Patient.diagnoses", "Address.state"} <= fields


async def test_a_refused_request_executes_nothing(
    as_role: AsRole, statements: StatementCounter
) -> None:
    billing = await as_role(Role.BILLING, Purpose.PAYMENT)
    before = statements.count
    response = await billing("{ patients { edges { node { diagnoses { icd10Code } } } } }")
    assert response.data is None
    sent = statements.statements[before:]
    assert not any(
        "phigate.patients" in statement or "phigate.diagnoses" in statement for statement in sent
    )


async def test_break_glass_reaches_one_patient_and_is_reviewed(as_role: AsRole) -> None:
    alice = await as_role(Role.CLINICIAN, Purpose.TREATMENT)
    patient_id = await register(alice)
    other_id = await register(alice)
    no_reason = await as_role(Role.CLINICIAN, Purpose.EMERGENCY)
    assert (await no_reason(GET, {"id": patient_id})).codes == ["BREAK_GLASS_REASON_REQUIRED"]

    bob = await as_role(Role.CLINICIAN, Purpose.EMERGENCY, reason=REASON)
    assert (await bob(GET, {"id": patient_id})).ok()["patient"]["id"] == patient_id
    listed = (await bob("{ patients { edges { node { id } } } }")).ok()["patients"]["edges"]
    assert [edge["node"]["id"] for edge in listed] == [
        patient_id
    ]  # only the patient the glass was broken for
    assert other_id not in str(listed)

    compliance = await as_role(Role.COMPLIANCE_OFFICER, Purpose.COMPLIANCE)
    pending = (await compliance("{ breakGlassEpisodes { id patientId reason reviewedAt } }")).ok()[
        "breakGlassEpisodes"
    ]
    assert [(e["patientId"], e["reason"], e["reviewedAt"]) for e in pending] == [
        (patient_id, REASON, None)
    ]
    reviewed = await compliance(
        "mutation($i: BreakGlassReviewInput!) { breakGlassReview(input: $i) { episode { reviewedAt reviewNote } } }",
        {"i": {"id": pending[0]["id"], "note": "Appropriate: emergency admission (synthetic)"}},
    )
    assert reviewed.ok()["breakGlassReview"]["episode"]["reviewedAt"]
    assert (await compliance("{ breakGlassEpisodes { id } }")).ok()["breakGlassEpisodes"] == []
    assert (
        len(
            (await compliance("{ breakGlassEpisodes(reviewed: true) { id } }")).ok()[
                "breakGlassEpisodes"
            ]
        )
        == 1
    )


async def test_break_glass_ends_when_the_episode_expires(
    as_role: AsRole, admin_engine: AsyncEngine
) -> None:
    alice = await as_role(Role.CLINICIAN, Purpose.TREATMENT)
    patient_id = await register(alice)
    bob = await as_role(Role.CLINICIAN, Purpose.EMERGENCY, reason=REASON)
    assert (await bob(GET, {"id": patient_id})).ok()
    async with admin_engine.begin() as connection:
        await connection.execute(
            text("UPDATE phigate.break_glass_episodes SET expires_at = now() - interval '1 second'")
        )
    bob_for_treatment = GraphQLClient(
        bob.http, {"Authorization": bob.headers["Authorization"], "X-Purpose-Of-Use": "TREATMENT"}
    )
    assert (await bob_for_treatment(GET, {"id": patient_id})).codes == ["NOT_FOUND"]


async def test_nurses_cannot_break_the_glass(as_role: AsRole) -> None:
    nurse = await as_role(Role.NURSE, Purpose.EMERGENCY, reason=REASON)
    assert (await nurse(GET, {"id": str(uuid.uuid4())})).codes == ["PURPOSE_NOT_ALLOWED"]


async def test_administrators_keep_care_teams_without_seeing_phi(as_role: AsRole) -> None:
    alice = await as_role(Role.CLINICIAN, Purpose.TREATMENT)
    patient_id = await register(alice)
    admin = await as_role(Role.ADMIN)
    users = (await admin("{ users { id username role } }")).ok()["users"]
    bob_token_user = await as_role(Role.NURSE, Purpose.TREATMENT)
    nurse_id = next(
        u["id"]
        for u in (await admin("{ users { id username role } }")).ok()["users"]
        if u["role"] == "NURSE"
    )
    assert len(users) >= 2
    assert (await bob_token_user(GET, {"id": patient_id})).codes == ["NOT_FOUND"]

    add = "mutation($i: CareTeamInput!) { careTeamAdd(input: $i) { membership { patientId userId } } }"
    assert (await admin(add, {"i": {"patientId": patient_id, "userId": nurse_id}})).ok()
    assert (await bob_token_user(GET, {"id": patient_id})).ok()["patient"]["givenName"] == "Alpha"
    remove = (
        "mutation($i: CareTeamInput!) { careTeamRemove(input: $i) { membership { patientId } } }"
    )
    assert (await admin(remove, {"i": {"patientId": patient_id, "userId": nurse_id}})).ok()
    assert (await bob_token_user(GET, {"id": patient_id})).codes == ["NOT_FOUND"]

    assert (
        await admin(add, {"i": {"patientId": str(uuid.uuid4()), "userId": nurse_id}})
    ).codes == ["NOT_FOUND"]
    refused = await admin(GET, {"id": patient_id})
    assert refused.data is None
    assert set(refused.codes) == {
        "FORBIDDEN_OPERATION",
        "PURPOSE_REQUIRED",
    }  # no permission, and names are PHI
    assert (await alice("{ users { id } }")).codes == ["FORBIDDEN_OPERATION"]


async def test_services_are_held_to_their_scopes(service) -> None:
    baas_only = await service("baas:read")
    assert (await baas_only("{ patients { edges { node { id } } } }")).codes == [
        "FORBIDDEN_OPERATION"
    ]
    assert (await baas_only("{ baas { vendorName } }")).ok() == {"baas": []}
    reader = await service("patients:read", purpose=Purpose.TREATMENT)
    assert (await reader("{ patients { edges { node { diagnoses { icd10Code } } } } }")).ok()
    writer_less = await reader(
        "mutation($i: PatientCreateInput!) { patientCreate(input: $i) { patient { id } } }",
        {"i": patient_input()},
    )
    assert "FORBIDDEN_OPERATION" in writer_less.codes


async def test_introspection_is_for_roles_that_explore(as_role: AsRole) -> None:
    analyst = await as_role(Role.ANALYST)
    assert (await analyst("{ __schema { queryType { name } } }")).ok()["__schema"]["queryType"][
        "name"
    ] == "Query"
    clinician = await as_role(Role.CLINICIAN, Purpose.TREATMENT)
    assert (await clinician("{ __schema { queryType { name } } }")).codes == ["FORBIDDEN_OPERATION"]
    assert (await clinician("{ __typename }")).ok() == {"__typename": "Query"}


def test_inputs_cannot_set_ownership_roles_or_audit_fields() -> None:
    """Mass assignment: who did what comes from the authenticated caller, never input.
    Every input type a mutation takes (filters for queries select, they assign nothing)."""
    forbidden = {"createdBy", "recordedBy", "changedBy", "reportedBy", "addedBy", "reviewedBy", "legalHold",
                 "legalHoldSetBy", "createdAt", "updatedAt", "recordedAt", "role", "actorId", "sessionId"}  # fmt: skip
    pending = [
        get_named_type(argument.type)
        for field in schema._schema.mutation_type.fields.values()
        for argument in field.args.values()
    ]
    seen: set[str] = set()
    while pending:
        input_type = pending.pop()
        if not isinstance(input_type, GraphQLInputObjectType) or input_type.name in seen:
            continue
        seen.add(input_type.name)
        assert not set(input_type.fields) & forbidden, input_type.name
        pending += [get_named_type(field.type) for field in input_type.fields.values()]
    assert {"PatientCreateInput", "PatientUpdateInput", "BaaSignInput", "BreachUpdateInput"} <= seen


async def test_writers_are_recorded_from_the_token(
    clinician: GraphQLClient, admin_engine: AsyncEngine
) -> None:
    await register(clinician)
    async with admin_engine.connect() as connection:
        created_by = await connection.scalar(text("SELECT created_by FROM phigate.patients"))
        recorded_by = await connection.scalar(text("SELECT recorded_by FROM phigate.diagnoses"))
        on_team = await connection.scalar(text("SELECT count(*) FROM phigate.care_team_members"))
    assert created_by == recorded_by and uuid.UUID(created_by)
    assert on_team == 1


async def test_decisions_are_computed_once_per_document_role_and_purpose(
    as_role: AsRole, monkeypatch: pytest.MonkeyPatch
) -> None:
    walked: list[int] = []
    original = authorization.accesses
    monkeypatch.setattr(
        authorization, "accesses", lambda *a, **k: walked.append(1) or original(*a, **k)
    )
    first = await as_role(Role.BILLING, Purpose.PAYMENT)
    second = await as_role(Role.BILLING, Purpose.PAYMENT)
    document = "{ patients(first: 5) { edges { node { mrn insurancePayer } } } } # cache probe 1"
    for caller in (first, second, first):
        assert (await caller(document)).ok() is not None
    assert walked == [1]
    other_purpose = await as_role(Role.COMPLIANCE_OFFICER, Purpose.COMPLIANCE)
    await other_purpose(document)
    assert walked == [1, 1]


async def test_nested_edges_are_scoped_too(
    gql: GraphQLClient, clinician: GraphQLClient, service
) -> None:
    """breach -> affectedPatients: a caller that may read breaches but reach no patients
    sees the breach and none of its patients."""
    patient_id = await register(clinician)
    report = "mutation($i: BreachReportInput!) { breachReport(input: $i) { breach { id } } }"
    breach_id = (
        await gql(
            report,
            {
                "i": {
                    "title": "t",
                    "discoveredAt": "2026-01-01T10:00:00Z",
                    "phiCategories": [],
                    "affectedPatientIds": [patient_id],
                }
            },
        )
    ).ok()["breachReport"]["breach"]["id"]
    query = "query($id: ID!) { breach(id: $id) { affectedCount affectedPatients { id } } }"
    assert (await gql(query, {"id": breach_id})).ok()["breach"]["affectedPatients"] == [
        {"id": patient_id}
    ]
    breaches_only = await service("breaches:read")
    seen = (await breaches_only(query, {"id": breach_id})).ok()["breach"]
    assert seen == {"affectedCount": 1, "affectedPatients": []}


async def test_classification_is_visible_through_introspection(as_role: AsRole) -> None:
    analyst = await as_role(Role.ANALYST)
    described = (await analyst('{ __type(name: "Patient") { fields { name description } } }')).ok()[
        "__type"
    ]["fields"]
    by_name = {field["name"]: field["description"] for field in described}
    assert by_name["ssn"].endswith("PHI: IDENTIFIER.")
    assert by_name["givenName"] == "PHI: IDENTITY."
    assert by_name["consents"].endswith("Data class: COMPLIANCE.")
