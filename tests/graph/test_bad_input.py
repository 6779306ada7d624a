"""Every bad input: a clear error naming the field and the rule, a stable code, no
echo of the submitted value, nothing internal, and nothing written."""

from __future__ import annotations

import uuid

import pytest

from domain.roles import Role
from tests.conftest import AsRole, count_rows
from tests.graph.queries import CREATE_PATIENT, patient_input
from tests.graphql_client import GraphQLClient, GraphQLResponse


@pytest.fixture
async def gql(clinician: GraphQLClient) -> GraphQLClient:
    """Patients are entered by clinicians (TREATMENT): bad input should meet the input
    rules, not the access policy."""
    return clinician


LEAKS = (
    "Traceback",
    "SELECT",
    "INSERT",
    "sqlalchemy",
    "asyncpg",
    "psycopg",
    ".py",
    "phigate.patients",
    "Did you mean",
)


def assert_clean(response: GraphQLResponse, *canaries: str) -> None:
    assert response.status == 200
    assert response.errors, response.raw
    for error in response.errors:
        assert error["extensions"]["code"]
        assert error["extensions"]["requestId"] == response.headers["x-request-id"]
    for text in (*LEAKS, *canaries):
        assert text not in response.raw, f"{text!r} leaked into {response.raw}"


CASES = [
    # (label, variables for CREATE_PATIENT, code, words the message must contain, canaries)
    (
        "impossible date",
        {"dateOfBirth": "1980-13-45"},
        "BAD_USER_INPUT",
        ["dateOfBirth", "real calendar date"],
        ["1980-13-45"],
    ),
    (
        "date in US format",
        {"dateOfBirth": "02/29/1980"},
        "BAD_USER_INPUT",
        ["dateOfBirth", "YYYY-MM-DD"],
        ["02/29/1980"],
    ),
    (
        "future birth date",
        {"dateOfBirth": "2150-01-01"},
        "BAD_USER_INPUT",
        ["input.dateOfBirth", "future"],
        ["2999-01-01"],
    ),
    (
        "unknown enum",
        {"retentionClass": "FOREVER_CANARY"},
        "BAD_USER_INPUT",
        ["retentionClass", "RetentionClass"],
        ["FOREVER_CANARY"],
    ),
    (
        "bad ICD-10",
        {"diagnoses": [{"icd10Code": "ZZ-CANARY"}]},
        "BAD_USER_INPUT",
        ["input.diagnoses[0].icd10Code", "ICD-10"],
        ["ZZ-CANARY"],
    ),
    (
        "bad SSN",
        {"ssn": "123-45-678X"},
        "BAD_USER_INPUT",
        ["input.ssn", "NNN-NN-NNNN"],
        ["123-45-678X"],
    ),
    (
        "bad state and ZIP",
        {"address": {"state": "QQ", "postalCode": "9999X"}},
        "BAD_USER_INPUT",
        ["input.address.state", "input.address.postalCode"],
        ["9999X"],
    ),
    (
        "bad phone",
        {"phone": "555-CANARY"},
        "BAD_USER_INPUT",
        ["input.phone", "E.164"],
        ["555-CANARY"],
    ),
    (
        "bad email",
        {"email": "canary-at-example"},
        "BAD_USER_INPUT",
        ["input.email"],
        ["canary-at-example"],
    ),
    (
        "wrong type",
        {"givenName": 12345678},
        "BAD_USER_INPUT",
        ["givenName", "String"],
        ["12345678"],
    ),
    (
        "unknown input field",
        {"socialSecurityCanary": "987-65-4329"},
        "BAD_USER_INPUT",
        ["PatientCreateInput"],
        ["987-65-4329", "socialSecurityCanary"],
    ),
    (
        "onset before birth",
        {"diagnoses": [{"icd10Code": "I10", "onsetDate": "1970-01-01"}]},
        "BAD_USER_INPUT",
        ["onsetDate", "date of birth"],
        ["1970-01-01"],
    ),
]


@pytest.mark.parametrize(
    ("label", "overrides", "code", "words", "canaries"), CASES, ids=[c[0] for c in CASES]
)
async def test_bad_patient_input(
    gql: GraphQLClient,
    app_engine,
    label: str,
    overrides: dict,
    code: str,
    words: list[str],
    canaries: list[str],
    admin_engine,
) -> None:
    response = await gql(CREATE_PATIENT, {"input": patient_input(**overrides)})
    assert_clean(response, *canaries)
    assert code in response.codes
    message = " ".join(error["message"] for error in response.errors)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    assert response.data is None
    assert await count_rows(admin_engine, "patients") == 0
    assert await count_rows(admin_engine, "diagnoses") == 0


async def test_missing_required_field_is_named(gql: GraphQLClient) -> None:
    values = patient_input()
    del values["familyName"]
    response = await gql(CREATE_PATIENT, {"input": values})
    assert_clean(response, "987-65-4320")
    assert "familyName" in response.errors[0]["message"]


async def test_every_violation_is_listed_at_once(gql: GraphQLClient) -> None:
    response = await gql(
        CREATE_PATIENT, {"input": patient_input(ssn="bad", phone="bad", mrn="bad")}
    )
    assert_clean(response)
    fields = {item["field"] for item in response.errors[0]["extensions"]["fields"]}
    assert fields == {"input.ssn", "input.phone", "input.mrn"}


LITERAL_CASES = [
    (
        "literal impossible date",
        'mutation { patientCreate(input: {mrn: "DEMO-T1", givenName: "A", familyName: "B", dateOfBirth: "1980-02-30"}) { patient { id } } }',
        "BAD_USER_INPUT",
        ["1980-02-30"],
    ),
    (
        "literal unknown enum",
        "{ baas(status: SIGNED_CANARY) { id } }",
        "BAD_USER_INPUT",
        ["SIGNED_CANARY"],
    ),
    (
        "literal string for int",
        '{ patients(first: "ten-canary") { edges { cursor } } }',
        "BAD_USER_INPUT",
        ["ten-canary"],
    ),
    (
        "datetime without offset",
        'mutation { breachReport(input: {title: "t", discoveredAt: "2026-01-01T10:00:00", phiCategories: []}) { breach { id } } }',
        "BAD_USER_INPUT",
        ["2026-01-01T10:00:00"],
    ),
    ("syntax error", '{ patient(id: "987-65-4320" ', "GRAPHQL_PARSE_FAILED", ["987-65-4320"]),
    ("unknown field", '{ patient(id: "x") { ssnCanaryTypo } }', "GRAPHQL_VALIDATION_FAILED", []),
]


@pytest.mark.parametrize(
    ("label", "document", "code", "canaries"), LITERAL_CASES, ids=[c[0] for c in LITERAL_CASES]
)
async def test_bad_literals(
    gql: GraphQLClient, label: str, document: str, code: str, canaries: list[str]
) -> None:
    response = await gql(document)
    assert_clean(response, *canaries)
    assert response.codes == [code]


async def test_unknown_field_names_the_field_without_suggestions(gql: GraphQLClient) -> None:
    response = await gql('{ patient(id: "x") { ssnn } }')
    assert "ssnn" in response.errors[0]["message"]  # the caller's own field name is fine to echo
    assert "Did you mean" not in response.raw


@pytest.mark.parametrize(
    ("document", "variables", "code", "field"),
    [
        (
            "query($id: ID!) { patient(id: $id) { id } }",
            {"id": str(uuid.uuid4())},
            "NOT_FOUND",
            "id",
        ),
        (
            "query($id: ID!) { patient(id: $id) { id } }",
            {"id": "not-a-uuid-canary"},
            "BAD_USER_INPUT",
            "id",
        ),
        ("query($id: ID!) { baa(id: $id) { id } }", {"id": str(uuid.uuid4())}, "NOT_FOUND", "id"),
        (
            "query($id: ID!) { breach(id: $id) { id } }",
            {"id": str(uuid.uuid4())},
            "NOT_FOUND",
            "id",
        ),
        ("{ patients(first: 101) { edges { cursor } } }", None, "BAD_USER_INPUT", "first"),
        ("{ patients(first: 0) { edges { cursor } } }", None, "BAD_USER_INPUT", "first"),
        (
            '{ patients(after: "bm90LWEtY3Vyc29y") { edges { cursor } } }',
            None,
            "BAD_USER_INPUT",
            "after",
        ),
    ],
)
async def test_ids_pages_and_cursors(
    as_role: AsRole, document: str, variables: dict | None, code: str, field: str
) -> None:
    gql = await as_role(Role.COMPLIANCE_OFFICER)  # may reach patients, BAAs and breaches
    response = await gql(document, variables)
    assert_clean(response, "not-a-uuid-canary")
    assert response.codes == [code]
    assert field in response.errors[0]["message"]


async def test_page_size_error_states_the_maximum(gql: GraphQLClient) -> None:
    response = await gql("{ patients(first: 1000) { edges { cursor } } }")
    assert "between 1 and 100" in response.errors[0]["message"]


async def test_unknown_ids_in_mutations_write_nothing(
    as_role: AsRole, app_engine, admin_engine
) -> None:
    gql = await as_role(Role.COMPLIANCE_OFFICER)
    stranger = str(uuid.uuid4())
    response = await gql(
        "mutation($input: BreachReportInput!) { breachReport(input: $input) { breach { id } } }",
        {
            "input": {
                "title": "t",
                "discoveredAt": "2026-01-01T10:00:00Z",
                "phiCategories": [],
                "affectedPatientIds": [stranger],
            }
        },
    )
    assert_clean(response)
    assert response.codes == ["NOT_FOUND"]
    assert await count_rows(admin_engine, "breach_incidents") == 0
