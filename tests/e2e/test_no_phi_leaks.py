"""Canary PHI (a unique SSN, name, diagnosis and the rest) is pushed through every query
and mutation, successes and failures alike; afterwards not one log line and not one
audit column (nor the hash chain) contains any of it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from db import audit
from domain.purposes import Purpose
from domain.roles import Role
from tests.conftest import AsRole
from tests.graph.queries import CREATE_PATIENT, GET_PATIENT, UPDATE_PATIENT

CANARIES = {
    "givenName": "Zyxwcanary",
    "familyName": "Qvcanaryson",
    "ssn": "987-65-4327",
    "phone": "+16175550177",
    "email": "canary.person@example.test",
    "insuranceMemberId": "XMP-CANARY77",
}
CANARY_DIAGNOSIS = "Canarytext diagnosis narrative"
CANARY_STREET = "77 Canarybird Lane"
BAD_CANARIES = ["987-65-432X", "1980-13-45", "not-a-phone-canary", "canary@@bad"]
EVERY_CANARY = [
    *CANARIES.values(),
    CANARY_DIAGNOSIS,
    CANARY_STREET,
    "canary-password-x1",
    "canary.username",
    *BAD_CANARIES,
]


async def test_canary_phi_reaches_no_log_and_no_audit_column(
    as_role: AsRole,
    client: httpx.AsyncClient,
    app_engine: AsyncEngine,
    capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    clinician = await as_role(Role.CLINICIAN, Purpose.TREATMENT)
    created = await clinician(
        CREATE_PATIENT,
        {
            "input": {
                "dateOfBirth": "1981-03-04",
                "address": {
                    "line": CANARY_STREET,
                    "city": "Testville",
                    "state": "MA",
                    "postalCode": "02115",
                },
                "diagnoses": [{"icd10Code": "E11.9", "description": CANARY_DIAGNOSIS}],
                **CANARIES,
            }
        },
    )
    patient_id = created.ok()["patientCreate"]["patient"]["id"]
    await clinician(GET_PATIENT, {"id": patient_id})
    await clinician.http.get(
        "/graphql",
        params={
            "query": "query($id: ID!) { patient(id: $id) { ssn familyName } }",
            "variables": json.dumps({"id": patient_id}),
        },
        headers=clinician.headers,
    )
    await clinician(UPDATE_PATIENT, {"input": {"id": patient_id, "phone": "+16175550178"}})
    for bad in (
        {"ssn": BAD_CANARIES[0]},
        {"dateOfBirth": BAD_CANARIES[1]},
        {"phone": BAD_CANARIES[2]},
        {"email": BAD_CANARIES[3]},
        {"givenName": CANARIES["givenName"] * 20},
    ):
        await clinician(UPDATE_PATIENT, {"input": {"id": patient_id, **bad}})
    await clinician(f'{{ patient(id: "{CANARIES["ssn"]}") {{ id }} }}')
    await clinician(
        f'mutation {{ patientCreate(input: {{mrn: "DEMO-CANARY-2", givenName: "{CANARIES["givenName"]}", familyName: "x", dateOfBirth: "{BAD_CANARIES[1]}"}}) {{ patient {{ id }} }} }}'
    )
    await clinician(
        "mutation($i: ConsentRecordInput!) { consentRecord(input: $i) { consent { id } } }",
        {
            "i": {
                "patientId": patient_id,
                "consentType": "RESEARCH",
                "status": "GRANTED",
                "effectiveDate": "2026-01-02",
            }
        },
    )

    billing = await as_role(Role.BILLING, Purpose.PAYMENT)
    await billing(
        "{ patients { edges { node { ssn familyName insuranceMemberId diagnoses { description } } } } }"
    )
    await billing("{ patients { edges { node { ssn familyName insuranceMemberId } } } }")

    compliance = await as_role(Role.COMPLIANCE_OFFICER, Purpose.COMPLIANCE)
    now = datetime.now(UTC)
    breach = (
        await compliance(
            "mutation($i: BreachReportInput!) { breachReport(input: $i) { breach { id affectedPatients { givenName familyName address { line } } } } }",
            {
                "i": {
                    "title": "Synthetic incident",
                    "discoveredAt": now.isoformat(),
                    "phiCategories": ["IDENTITY"],
                    "affectedPatientIds": [patient_id],
                }
            },
        )
    ).ok()["breachReport"]["breach"]
    await compliance(
        "mutation($i: BreachUpdateInput!) { breachUpdate(input: $i) { breach { id } } }",
        {"i": {"id": breach["id"], "status": "UNDER_ASSESSMENT"}},
    )
    await compliance("{ breaches { affectedPatients { givenName email phone } } }")
    baa = (
        await compliance(
            "mutation($i: BaaCreateInput!) { baaCreate(input: $i) { baa { id } } }",
            {
                "i": {
                    "vendorName": "Example (synthetic)",
                    "services": ["x"],
                    "phiCategories": ["CLINICAL"],
                }
            },
        )
    ).ok()["baaCreate"]["baa"]
    await compliance(
        "mutation($i: BaaUpdateInput!) { baaUpdate(input: $i) { baa { id } } }",
        {"i": {"id": baa["id"], "status": "SENT"}},
    )

    emergency = await as_role(
        Role.CLINICIAN, Purpose.EMERGENCY, reason="Synthetic emergency for a canary test"
    )
    await emergency(GET_PATIENT, {"id": patient_id})

    auditor = await as_role(Role.AUDITOR, Purpose.COMPLIANCE)
    await auditor("{ auditEvents(first: 100) { edges { node { fieldPath recordId } } } }")
    await auditor(
        "query($p: ID!, $f: DateTime!, $t: DateTime!) { accountingOfDisclosures(patientId: $p, from: $f, to: $t) { fields } }",
        {
            "p": patient_id,
            "f": (now - timedelta(hours=1)).isoformat(),
            "t": (now + timedelta(hours=1)).isoformat(),
        },
    )
    await auditor(
        "{ complianceStatistics(days: 1) { failedLogins } auditAnomalies(days: 1) { kind } }"
    )

    await client.post(
        "/auth/login",
        json={"username": "canary.username", "password": "canary-password-x1", "totp": "123456"},
    )
    await client.post("/auth/login", content=b'{"username": "canary.username", "password": ')

    await audit.seal_all(app_engine)
    logs = capsys.readouterr()
    async with app_engine.connect() as connection:
        trail = json.dumps(
            [
                dict(r._mapping)
                for r in await connection.execute(text("SELECT * FROM audit.events"))
            ],
            default=str,
        )
        chain = json.dumps(
            [dict(r._mapping) for r in await connection.execute(text("SELECT * FROM audit.chain"))],
            default=str,
        )
    assert len(trail) > 10_000, "the exercise should have left a substantial trail"
    for canary in EVERY_CANARY:
        assert canary not in logs.out and canary not in logs.err, f"{canary!r} reached a log"
        assert canary not in trail, f"{canary!r} reached the audit trail"
        assert canary not in chain
    lines = [json.loads(line) for line in logs.err.splitlines() if line.startswith("{")]
    assert lines and all(set(line) <= {"event", "level", "timestamp", "logger", "request_id", "method", "path", "status",
                                       "duration_ms", "client_ip", "error_codes", "operation_name", "exc_type", "exc_location"}
                         for line in lines)  # fmt: skip
