"""Reviewing the trail: filters, summaries, the accounting of disclosures, statistics,
anomalies; for compliance officers and auditors only, and itself recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.purposes import Purpose
from domain.roles import Role
from graph.settings import Settings
from tests.conftest import FAST_HASHING, TEST_KEYS, AsRole
from tests.graph.queries import CREATE_PATIENT, patient_input
from tests.graphql_client import GraphQLClient

EVENTS = """query($filter: AuditEventFilter, $after: String) {
  auditEvents(filter: $filter, first: 3, after: $after) {
    edges { node { action outcome actorId role purpose fieldPath dataClass recordId } }
    pageInfo { hasNextPage endCursor }
  }
}"""


@pytest.fixture
def settings() -> Settings:
    # A low bulk-access threshold, so a test can trip it.
    return Settings(**TEST_KEYS, anomaly_bulk_patients=2, **FAST_HASHING)


@pytest.fixture
async def auditor(as_role: AsRole) -> GraphQLClient:
    return await as_role(Role.AUDITOR, Purpose.COMPLIANCE)


@pytest.fixture
async def history(clinician: GraphQLClient) -> dict:
    """A clinician registers three patients and reads their charts."""
    ids = []
    for _ in range(3):
        ids.append(
            (await clinician(CREATE_PATIENT, {"input": patient_input()})).ok()["patientCreate"][
                "patient"
            ]["id"]
        )
    for patient_id in ids:
        (
            await clinician(
                "query($id: ID!) { patient(id: $id) { givenName diagnoses { icd10Code } } }",
                {"id": patient_id},
            )
        ).ok()
    actor = (await clinician("{ patients(first: 1) { edges { node { id } } } }")).ok()
    return {"patients": ids, "actor": actor}


async def clinician_id(engine: AsyncEngine) -> str:
    async with engine.connect() as connection:
        return await connection.scalar(
            text(
                "SELECT actor_id FROM audit.events WHERE category = 'ACCESS' AND role = 'CLINICIAN' LIMIT 1"
            )
        )


async def test_filtered_pages_of_entries(
    auditor: GraphQLClient, history: dict, app_engine: AsyncEngine
) -> None:
    actor = await clinician_id(app_engine)
    clinical = {"actorId": actor, "fieldCategory": "CLINICAL", "outcome": "ALLOWED"}
    first = (await auditor(EVENTS, {"filter": clinical})).ok()["auditEvents"]
    assert first["pageInfo"]["hasNextPage"] is True
    rest = (
        await auditor(EVENTS, {"filter": clinical, "after": first["pageInfo"]["endCursor"]})
    ).ok()["auditEvents"]
    nodes = [edge["node"] for page in (first, rest) for edge in page["edges"]]
    # Diagnoses written at registration and read on each chart: CLINICAL, by this actor.
    assert nodes and all(n["dataClass"] == "CLINICAL" and n["actorId"] == actor for n in nodes)
    assert len(nodes) == 6 and {n["action"] for n in nodes} <= {"READ", "WRITE"}
    one = (
        await auditor(
            EVENTS, {"filter": {"patientId": history["patients"][0], "outcome": "ALLOWED"}}
        )
    ).ok()["auditEvents"]["edges"]
    assert {edge["node"]["recordId"] for edge in one} == {history["patients"][0]}


async def test_what_one_user_touched(
    auditor: GraphQLClient, history: dict, app_engine: AsyncEngine
) -> None:
    actor = await clinician_id(app_engine)
    summary = (
        await auditor(
            "query($u: String!) { phiAccessSummary(userId: $u, days: 1) { patientId categories accesses } }",
            {"u": actor},
        )
    ).ok()
    touched = {row["patientId"]: row for row in summary["phiAccessSummary"]}
    assert set(touched) == set(history["patients"])
    assert set(touched[history["patients"][0]]["categories"]) >= {"IDENTITY", "CLINICAL"}


async def test_accounting_of_disclosures(auditor: GraphQLClient, history: dict) -> None:
    now = datetime.now(UTC)
    lines = (
        await auditor(
            "query($p: ID!, $f: DateTime!, $t: DateTime!) { accountingOfDisclosures(patientId: $p, from: $f, to: $t) { role purpose actions fields outcome } }",
            {
                "p": history["patients"][1],
                "f": (now - timedelta(hours=1)).isoformat(),
                "t": (now + timedelta(hours=1)).isoformat(),
            },
        )
    ).ok()["accountingOfDisclosures"]
    assert [(line["role"], line["purpose"], line["actions"]) for line in lines] == [
        ("CLINICIAN", "TREATMENT", ["READ", "WRITE"]),  # registration, which returns the chart
        ("CLINICIAN", "TREATMENT", ["READ"]),  # the chart read
    ]
    assert lines[1]["fields"] == ["Diagnosis.icd10Code", "Patient.givenName"]
    wrong_way = await auditor(
        "query($p: ID!, $f: DateTime!, $t: DateTime!) { accountingOfDisclosures(patientId: $p, from: $f, to: $t) { role } }",
        {
            "p": history["patients"][1],
            "f": now.isoformat(),
            "t": (now - timedelta(days=1)).isoformat(),
        },
    )
    assert wrong_way.codes == ["BAD_USER_INPUT"]


async def test_statistics_and_anomalies(
    auditor: GraphQLClient, history: dict, as_role: AsRole
) -> None:
    billing = await as_role(Role.BILLING, Purpose.PAYMENT)
    for _ in range(2):
        await billing("{ patients { edges { node { diagnoses { icd10Code } } } } }")  # refused
    stats = (
        await auditor(
            "{ complianceStatistics(days: 1) { accessesByRole { key count } accessesByCategory { key count } denialsByReason { key count } failedLogins } }"
        )
    ).ok()["complianceStatistics"]
    assert {row["key"] for row in stats["accessesByRole"]} == {"CLINICIAN"}
    assert {"CLINICAL", "IDENTITY"} <= {row["key"] for row in stats["accessesByCategory"]}
    assert {row["key"]: row["count"] for row in stats["denialsByReason"]}["FORBIDDEN_FIELD"] == 4
    anomalies = (await auditor("{ auditAnomalies(days: 1) { kind actorId count } }")).ok()[
        "auditAnomalies"
    ]
    assert any(a["kind"] == "BULK_ACCESS" and a["count"] == 3 for a in anomalies)


async def test_only_compliance_and_audit_roles_may_review_and_every_review_is_recorded(
    auditor: GraphQLClient, clinician: GraphQLClient, history: dict, app_engine: AsyncEngine
) -> None:
    assert "FORBIDDEN_OPERATION" in (await clinician("{ complianceStatistics { days } }")).codes
    no_purpose = GraphQLClient(auditor.http, {"Authorization": auditor.headers["Authorization"]})
    assert set((await no_purpose("{ auditEvents { edges { node { actorId } } } }")).codes) == {
        "FORBIDDEN_FIELD"
    }
    await auditor("{ complianceStatistics { days } }")
    async with app_engine.connect() as connection:
        noted = (
            await connection.execute(
                text("SELECT role, field_path FROM audit.events WHERE action = 'AUDIT_QUERY'")
            )
        ).all()
    assert ("AUDITOR", "Query.complianceStatistics") in [tuple(row) for row in noted]


async def test_review_inputs_are_validated(auditor: GraphQLClient) -> None:
    assert (await auditor("{ complianceStatistics(days: 0) { days } }")).codes == ["BAD_USER_INPUT"]
    assert (await auditor('{ auditEvents(after: "nope") { edges { cursor } } }')).codes == [
        "BAD_USER_INPUT"
    ]
    assert (
        await auditor('{ auditEvents(filter: {patientId: "not-an-id"}) { edges { cursor } } }')
    ).codes == ["BAD_USER_INPUT"]
    # Outcomes and purposes are enums: a typo is refused, not silently matched to nothing.
    typo = await auditor("{ auditEvents(filter: {outcome: MAYBE}) { edges { cursor } } }")
    assert typo.codes == ["BAD_USER_INPUT"]


async def test_paging_walks_every_entry_of_a_listing_once(
    auditor: GraphQLClient, clinician: GraphQLClient, history: dict, app_engine: AsyncEngine
) -> None:
    # One listing touches three patients: one stored row, three entries, which pages of
    # three must split and resume without skipping or repeating any.
    (await clinician("{ patients(first: 10) { edges { node { givenName } } } }")).ok()
    actor = await clinician_id(app_engine)
    async with app_engine.connect() as connection:
        expected = await connection.scalar(
            text(
                "SELECT sum(greatest(cardinality(record_ids), 1)) FROM audit.events"
                " WHERE actor_id = :actor AND category = 'ACCESS'"
            ),
            {"actor": actor},
        )
    seen: list[tuple[str, str, str]] = []
    after = None
    while True:
        query = """query($filter: AuditEventFilter, $after: String) {
          auditEvents(filter: $filter, first: 3, after: $after) {
            edges { node { id fieldPath recordId } }
            pageInfo { hasNextPage endCursor }
          }
        }"""
        page = (await auditor(query, {"filter": {"actorId": actor}, "after": after})).ok()[
            "auditEvents"
        ]
        seen += [
            (e["node"]["id"], e["node"]["fieldPath"], e["node"]["recordId"]) for e in page["edges"]
        ]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(seen) == expected == len(set(seen))
    listed = {record for _, path, record in seen if path == "Patient.givenName"}
    assert set(history["patients"]) <= listed


async def test_a_pages_fields_are_disclosed_though_its_records_are_indexed_once(
    auditor: GraphQLClient, clinician: GraphQLClient, history: dict, app_engine: AsyncEngine
) -> None:
    """A page read for two PHI fields writes two entries of the same records; the index
    holds the first only (the other is ``record_ids_repeated``), and the accounting of
    disclosures still lists both fields for every patient on the page."""
    read = "{ patients(first: 10) { edges { node { id givenName familyName } } } }"
    (await clinician(read)).ok()
    async with app_engine.connect() as connection:
        entries = (
            await connection.execute(
                text(
                    "SELECT field_path, record_ids_repeated, cardinality(record_ids) AS records"
                    " FROM audit.events WHERE operation_name IS NULL AND field_path IN"
                    " ('Patient.givenName', 'Patient.familyName') AND request_id = ("
                    "   SELECT request_id FROM audit.events"
                    "   WHERE field_path = 'Patient.familyName' ORDER BY id DESC LIMIT 1)"
                    " ORDER BY id"
                )
            )
        ).all()
    assert [(e.records, e.record_ids_repeated) for e in entries] == [(3, False), (3, True)]
    now = datetime.now(UTC)
    for patient in history["patients"]:
        lines = (
            await auditor(
                "query($p: ID!, $f: DateTime!, $t: DateTime!) { accountingOfDisclosures(patientId: $p, from: $f, to: $t) { fields } }",
                {
                    "p": patient,
                    "f": (now - timedelta(hours=1)).isoformat(),
                    "t": (now + timedelta(hours=1)).isoformat(),
                },
            )
        ).ok()["accountingOfDisclosures"]
        assert lines[-1]["fields"] == ["Patient.familyName", "Patient.givenName"]
