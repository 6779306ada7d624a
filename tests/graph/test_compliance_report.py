"""The compliance report: built from the same trail, breaches, BAAs and accounts the
rest of the API serves, with the audit chain verified on the spot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from db import audit
from domain.purposes import Purpose
from domain.roles import Role
from tests.conftest import AsRole
from tests.db.test_audit_chain import as_superuser_bypassing_triggers
from tests.graph.queries import CREATE_PATIENT, patient_input
from tests.graph.test_breaches import report as report_breach
from tests.graphql_client import GraphQLClient

REPORT = "query($from: DateTime!, $to: DateTime!) { complianceReport(from: $from, to: $to) }"


def period() -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "from": (now - timedelta(days=1)).isoformat(),
        "to": (now + timedelta(minutes=5)).isoformat(),
    }


async def test_the_report_counts_what_happened(
    as_role: AsRole,
    clinician: GraphQLClient,
    gql: GraphQLClient,
    seeded: int,
    app_engine: AsyncEngine,
) -> None:
    created = await clinician(CREATE_PATIENT, {"input": patient_input()})
    patient_id = created.ok()["patientCreate"]["patient"]["id"]
    (await clinician("query($id: ID!) { patient(id: $id) { givenName } }", {"id": patient_id})).ok()
    billing = await as_role(Role.BILLING, Purpose.PAYMENT)
    assert (
        await billing("{ patients(first: 1) { edges { node { diagnoses { icd10Code } } } } }")
    ).data is None
    discovered = datetime.now(UTC) - timedelta(days=70)
    await report_breach(
        gql,
        discoveredAt=discovered.isoformat(),
        occurredAt=(discovered - timedelta(days=1)).isoformat(),
    )

    auditor = await as_role(Role.AUDITOR, Purpose.COMPLIANCE)
    document = (await auditor(REPORT, period())).ok()["complianceReport"]
    access = document["phi_access"]
    assert access["by_role"]["CLINICIAN"] >= 2  # the registration's writes and the read
    assert access["by_category"]["IDENTITY"] >= 1
    # One entry per field refused: Patient.diagnoses and Diagnosis.icd10Code.
    assert access["denials_by_role"] == {"BILLING": 2}
    assert document["breaches"]["deadlines_by_status"]["OVERDUE"] >= 1
    assert document["breaches"]["count"] == len(document["breaches"]["incidents"])
    assert document["accounts"]["without_mfa"] == 0
    assert document["accounts"]["users"] >= 3
    assert document["baas"]["by_status"]
    assert document["audit_chain"]["verified"] is True
    assert "DEMO-REP-001" not in str(document) and "Synthetic" not in str(document)


async def test_a_tampered_trail_shows_in_the_report(
    as_role: AsRole, clinician: GraphQLClient, app_engine: AsyncEngine, admin_engine: AsyncEngine
) -> None:
    (await clinician(CREATE_PATIENT, {"input": patient_input()})).ok()
    await audit.seal_all(app_engine)
    await as_superuser_bypassing_triggers(
        admin_engine,
        "UPDATE audit.events SET actor_id = 'someone-else' WHERE id = (SELECT min(id) FROM audit.events)",
    )
    auditor = await as_role(Role.AUDITOR, Purpose.COMPLIANCE)
    chain = (await auditor(REPORT, period())).ok()["complianceReport"]["audit_chain"]
    assert chain["verified"] is False and chain["first_broken"]
    backwards = await auditor(REPORT, {"from": period()["to"], "to": period()["from"]})
    assert backwards.codes == ["BAD_USER_INPUT"]
    clinician_report = await clinician(REPORT, period())
    assert clinician_report.data is None
