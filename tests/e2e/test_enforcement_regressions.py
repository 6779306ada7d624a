"""Regression tests for three holes found by trying the core promises as an attacker
would (issue: enforcement by construction). Each is over HTTP, the way it was found:

1. writes through a variable's default value skipped the decision and the audit;
2. an unauthenticated GET ran operations when its parameter name was percent-encoded;
3. reads through an open break-glass episode were recorded as ordinary reads.
"""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.purposes import Purpose
from domain.roles import Role
from tests.conftest import AsRole, count_rows
from tests.graph.queries import CREATE_PATIENT, patient_input
from tests.graphql_client import GraphQLClient

REASON = "Unresponsive on arrival, no care team on shift (synthetic)"
GET_NAMES = "query($id: ID!) { patient(id: $id) { id givenName phone } }"


async def _register(as_role: AsRole) -> tuple[str, GraphQLClient]:
    """A patient on the care team of a clinician acting for TREATMENT."""
    alice = await as_role(Role.CLINICIAN, Purpose.TREATMENT)
    created = await alice(CREATE_PATIENT, {"input": patient_input()})
    return created.ok()["patientCreate"]["patient"]["id"], alice


def _without_purpose(caller: GraphQLClient) -> GraphQLClient:
    return GraphQLClient(caller.http, {"Authorization": caller.headers["Authorization"]})


async def _phone_of(alice: GraphQLClient, patient_id: str) -> str:
    return (await alice(GET_NAMES, {"id": patient_id})).ok()["patient"]["phone"]


async def _write_entries(engine: AsyncEngine, outcome: str = "ALLOWED") -> int:
    async with engine.connect() as connection:
        return int(
            (
                await connection.execute(
                    text(
                        "SELECT count(*) FROM audit.events"
                        " WHERE action = 'WRITE' AND outcome = :outcome"
                    ),
                    {"outcome": outcome},
                )
            ).scalar_one()
        )


def _sneaky_update(patient_id: str, **fields: object) -> str:
    values = ", ".join(
        f"{name}: {value}" for name, value in {"id": f'"{patient_id}"', **fields}.items()
    )
    return (
        f"mutation Sneaky($in: PatientUpdateInput! = {{{values}}})"
        " { patientUpdate(input: $in) { patient { id } } }"
    )


async def test_a_default_value_cannot_write_without_a_purpose(
    as_role: AsRole, admin_engine: AsyncEngine
) -> None:
    patient_id, alice = await _register(as_role)
    before = await _write_entries(admin_engine)
    no_purpose = _without_purpose(alice)
    sneaky = _sneaky_update(
        patient_id, phone='"+15555550188"', addDiagnoses='[{icd10Code: "Z00.01"}]'
    )
    refused = await no_purpose(sneaky)
    assert refused.data is None
    assert set(refused.codes) == {"PURPOSE_REQUIRED"}
    fields = {error["extensions"]["field"] for error in refused.errors}
    assert {"PatientUpdateInput.phone", "PatientUpdateInput.addDiagnoses"} <= fields
    assert await _phone_of(alice, patient_id) == "+16175550100"
    assert await _write_entries(admin_engine) == before
    assert await _write_entries(admin_engine, "DENIED") >= 2  # the refusal is audited


async def test_a_default_value_cannot_write_a_class_the_role_may_not(
    as_role: AsRole, admin_engine: AsyncEngine
) -> None:
    patient_id, alice = await _register(as_role)
    billing = await as_role(Role.BILLING, Purpose.PAYMENT)
    refused = await billing(_sneaky_update(patient_id, givenName='"Renamed"'))
    assert refused.data is None
    assert refused.codes == ["FORBIDDEN_FIELD"]
    assert refused.errors[0]["extensions"]["field"] == "PatientUpdateInput.givenName"
    names = (await alice(GET_NAMES, {"id": patient_id})).ok()["patient"]
    assert names["givenName"] == "Alpha"
    # What billing may write still goes through a default value, and is audited.
    allowed = await billing(
        _sneaky_update(patient_id, insurancePayer='"Example Payer (synthetic)"')
    )
    assert allowed.ok()["patientUpdate"]["patient"]["id"] == patient_id
    async with admin_engine.connect() as connection:
        written = (
            await connection.execute(
                text(
                    "SELECT field_path, record_ids FROM audit.events"
                    " WHERE action = 'WRITE' AND role = 'BILLING' AND outcome = 'ALLOWED'"
                )
            )
        ).all()
    assert [(row.field_path, [str(r) for r in row.record_ids]) for row in written] == [
        ("PatientUpdateInput.insurancePayer", [patient_id])
    ]


async def test_a_default_value_cannot_create_a_patient_without_a_purpose(
    as_role: AsRole, admin_engine: AsyncEngine
) -> None:
    before = await count_rows(admin_engine, "patients")
    billing = await as_role(Role.BILLING)
    document = (
        'mutation Sneaky($in: PatientCreateInput! = {mrn: "DEMO-REG-003", givenName: "Beta",'
        ' familyName: "Synthetic-Test", dateOfBirth: "1970-01-01", ssn: "987-65-4321",'
        ' diagnoses: [{icd10Code: "Z00.01"}]}) { patientCreate(input: $in) { patient { id } } }'
    )
    refused = await billing(document)
    assert refused.data is None
    assert "PURPOSE_REQUIRED" in refused.codes
    assert await count_rows(admin_engine, "patients") == before


async def test_a_default_list_item_and_a_nested_default_are_decided_too(
    as_role: AsRole,
) -> None:
    """Single values coerced to lists and defaults inside nested inputs."""
    patient_id, _ = await _register(as_role)
    billing = await as_role(Role.BILLING, Purpose.PAYMENT)
    # A default of a single object for a list variable is coerced to a list of one.
    single = await billing(
        'mutation($d: [DiagnosisInput!] = {icd10Code: "Z00.01"}) {'
        f' patientUpdate(input: {{id: "{patient_id}", addDiagnoses: $d}}) {{ patient {{ id }} }} }}'
    )
    assert single.data is None
    assert "FORBIDDEN_FIELD" in single.codes
    # A variable the document declares with a default but the request leaves out.
    nested = await billing(
        'mutation($a: AddressInput = {city: "Testville"}) {'
        f' patientUpdate(input: {{id: "{patient_id}", address: $a}}) {{ patient {{ id }} }} }}'
    )
    assert nested.data is None
    assert "FORBIDDEN_FIELD" in nested.codes


@pytest.mark.parametrize(
    "query_string",
    [
        "%71uery=%7B__typename%7D",  # "query" with its first letter percent-encoded
        "query=%7B__typename%7D",
        "qu%65ry=%7B__typename%7D",
        "QUERY=%7B__typename%7D&query=%7B__typename%7D",
        "extensions=%7B%7D&%71uery=%7B__typename%7D",
        "query=%7B__schema%7BqueryType%7Bname%7D%7D%7D",
    ],
)
async def test_an_unauthenticated_get_never_executes(
    client: httpx.AsyncClient, query_string: str
) -> None:
    page = await client.get(f"/graphql?{query_string}", headers={"Accept": "text/html"})
    assert '"data"' not in page.text
    assert "__typename" not in page.text.replace("%7B__typename%7D", "")
    if page.status_code == 303:  # a browser is sent to the console, query string dropped
        assert page.headers["location"] == "/console"
    else:
        assert page.status_code == 401
    plain = await client.get(f"/graphql?{query_string}")
    assert plain.status_code == 401
    assert '"data"' not in plain.text


async def test_an_unauthenticated_post_never_executes(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"Accept": "text/html"}
    )
    assert response.status_code == 401


async def test_reads_through_an_open_episode_are_recorded_as_break_glass(
    as_role: AsRole, token_for: object, client: httpx.AsyncClient
) -> None:
    patient_id, _ = await _register(as_role)
    token = await token_for(Role.CLINICIAN)  # type: ignore[operator]
    emergency = {
        "Authorization": f"Bearer {token}",
        "X-Purpose-Of-Use": "EMERGENCY",
        "X-Break-Glass-Reason": REASON,
    }
    opened = await client.post(
        "/graphql", json={"query": GET_NAMES, "variables": {"id": patient_id}}, headers=emergency
    )
    assert opened.json()["data"]["patient"]["id"] == patient_id
    treatment = {"Authorization": f"Bearer {token}", "X-Purpose-Of-Use": "TREATMENT"}
    later = await client.post(
        "/graphql",
        json={"query": GET_NAMES, "variables": {"id": patient_id}, "operationName": None},
        headers={**treatment, "X-Request-ID": "regression-after-glass"},
    )
    assert later.json()["data"]["patient"]["id"] == patient_id

    compliance = await as_role(Role.COMPLIANCE_OFFICER, Purpose.COMPLIANCE)
    [episode] = (await compliance("{ breakGlassEpisodes { id patientId accesses } }")).ok()[
        "breakGlassEpisodes"
    ]
    assert episode["patientId"] == patient_id
    assert episode["accesses"] == 2  # the read that opened it and the later one
    disclosures = (
        await compliance(
            "query($p: ID!) { accountingOfDisclosures(patientId: $p,"
            ' from: "2000-01-01T00:00:00Z", to: "2100-01-01T00:00:00Z")'
            " { requestId purpose breakGlass breakGlassEpisodeId } }",
            {"p": patient_id},
        )
    ).ok()["accountingOfDisclosures"]
    [after] = [d for d in disclosures if d["requestId"] == "regression-after-glass"]
    assert after["breakGlass"] is True
    assert after["breakGlassEpisodeId"] == episode["id"]
    assert after["purpose"] == "TREATMENT"  # what was declared, kept as declared


async def test_the_decision_cache_tells_apart_what_changes_the_decision(
    as_role: AsRole,
) -> None:
    """Booleans that select fields, and which input fields a variable carries, are part
    of the cached decision's key; other values are not."""
    nurse = await as_role(Role.NURSE, Purpose.TREATMENT)  # may not read IDENTIFIER
    document = "query($show: Boolean!) { patients(first: 1) { edges { node { id ssn @include(if: $show) } } } }"
    for show, refused in ((False, False), (True, True), (False, False), (True, True)):
        response = await nurse(document, {"show": show})
        assert (response.codes == ["FORBIDDEN_FIELD"]) is refused, (show, response.codes)
    patient_id, _ = await _register(as_role)
    update = "mutation($i: PatientUpdateInput!) { patientUpdate(input: $i) { patient { id } } }"
    billing = await as_role(Role.BILLING, Purpose.PAYMENT)
    for fields, refused in (
        ({"insurancePayer": "Payer A (synthetic)"}, False),
        ({"insurancePayer": "Payer B (synthetic)", "phone": "+16175550143"}, True),
        ({"insurancePayer": "Payer C (synthetic)"}, False),
    ):
        response = await billing(update, {"i": {"id": patient_id, **fields}})
        assert (response.codes == ["FORBIDDEN_FIELD"]) is refused, (fields, response.codes)


@pytest.fixture
def settings() -> object:
    from graph.settings import Settings
    from tests.conftest import FAST_HASHING, TEST_KEYS

    return Settings(**TEST_KEYS, **FAST_HASHING, rate_limit_anonymous="3/minute")


async def test_anonymous_callers_have_a_rate_limit_and_cost_one_event(
    client: httpx.AsyncClient, admin_engine: AsyncEngine
) -> None:
    forged = {"Authorization": "Bearer not.a.token"}
    statuses = []
    for n in range(6):
        response = await client.get(
            "/graphql?query=%7B__typename%7D", headers=forged if n % 2 else {}
        )
        statuses.append(response.status_code)
    assert statuses[:3] == [401, 401, 401]
    assert statuses[3:] == [429, 429, 429]
    async with admin_engine.connect() as connection:
        actions = list(
            (
                await connection.execute(
                    text("SELECT action FROM audit.events WHERE category = 'SECURITY'")
                )
            ).scalars()
        )
    # One rejected token under the limit (the other anonymous ones write nothing), and one
    # event when the address first passed the limit.
    assert sorted(actions) == ["ACCESS_TOKEN_REJECTED", "ANONYMOUS_RATE_LIMITED"]


async def test_reads_under_aliased_edges_and_payloads_are_audited(
    as_role: AsRole, admin_engine: AsyncEngine
) -> None:
    """Found while planning execution: the resolvers registered the records they returned
    under the literal names `edges.node` and `.patient`, while the decision names paths by
    the caller's aliases; an alias there left the PHI read out of the trail."""
    patient_id, alice = await _register(as_role)
    listed = await alice(
        "{ patients { e: edges { n: node { id givenName } } } }",
        headers={"X-Request-ID": "aliased-edges"},
    )
    assert listed.ok()["patients"]["e"][0]["n"]["id"] == patient_id
    updated = await alice(
        "mutation($i: PatientUpdateInput!) { patientUpdate(input: $i) { p: patient { phone } } }",
        {"i": {"id": patient_id, "email": "aliased@example.test"}},
        headers={"X-Request-ID": "aliased-payload"},
    )
    assert updated.ok()["patientUpdate"]["p"]["phone"] == "+16175550100"
    async with admin_engine.connect() as connection:
        rows = (
            await connection.execute(
                text(
                    "SELECT request_id, field_path, record_ids FROM audit.events"
                    " WHERE request_id IN ('aliased-edges', 'aliased-payload') AND action = 'READ'"
                )
            )
        ).all()
    read = {(r.request_id, r.field_path): [str(i) for i in r.record_ids] for r in rows}
    assert read[("aliased-edges", "Patient.givenName")] == [patient_id]
    assert read[("aliased-payload", "Patient.phone")] == [patient_id]
