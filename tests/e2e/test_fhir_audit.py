"""`phigate audit export --format fhir`: the trail as FHIR R4 AuditEvents following IHE
BALP, each validated against the FHIR models of `fhir.resources` (R4B: R4's technical
correction, whose AuditEvent is R4's), with the BALP elements each pattern requires,
the purpose of use as an HL7 v3 ActReason code, break-glass marked, no value anywhere,
and every resource traceable to the chain links it came from."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.fhir_audit import ACT_REASON, INTERACTION
from domain.purposes import Purpose
from domain.roles import Role
from graph.cli import main
from tests.conftest import AsRole
from tests.e2e.test_cli import external_database  # noqa: F401 (a fixture)
from tests.graph.queries import CREATE_PATIENT, UPDATE_PATIENT, patient_input

READ = "query($id: ID!) { patient(id: $id) { givenName ssn diagnoses { icd10Code } } }"
LIST = "{ patients(first: 10) { edges { node { mrn insurancePayer } } } }"
REASON = "Unresponsive on arrival, no care team on shift"


async def _traffic(as_role: AsRole) -> dict[str, str]:
    clinician = await as_role(Role.CLINICIAN, Purpose.TREATMENT)
    created = await clinician(CREATE_PATIENT, {"input": patient_input()})
    first = created.ok()["patientCreate"]["patient"]["id"]
    second = (await clinician(CREATE_PATIENT, {"input": patient_input(givenName="Bravo")})).ok()
    (await clinician(READ, {"id": first})).ok()
    update = {"input": {"id": first, "phone": "+16175550199"}}
    (await clinician(UPDATE_PATIENT, update)).ok()
    (await (await as_role(Role.BILLING, Purpose.PAYMENT))(LIST)).ok()
    other = await as_role(Role.CLINICIAN, Purpose.EMERGENCY, reason=REASON)
    (await other(READ, {"id": first})).ok()
    return {"first": first, "second": second["patientCreate"]["patient"]["id"]}


def _codes(concepts: list[dict]) -> set[str]:
    return {coding["code"] for concept in concepts for coding in concept["coding"]}


async def test_the_trail_exports_as_balp_audit_events(
    as_role: AsRole,
    external_database: str,  # noqa: F811
    admin_engine: AsyncEngine,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ids = await _traffic(as_role)
    # An audit review names the patient too; it is not an access to the patient's data.
    officer = await as_role(Role.COMPLIANCE_OFFICER, Purpose.COMPLIANCE)
    review = (
        "query($p: ID!) { accountingOfDisclosures(patientId: $p,"
        ' from: "2026-01-01T00:00:00Z", to: "2100-01-01T00:00:00Z") { role } }'
    )
    (await officer(review, {"p": ids["first"]})).ok()
    assert await asyncio.to_thread(main, ["audit", "seal"]) == 0
    target = tmp_path / "audit.json"
    assert (
        await asyncio.to_thread(
            main, ["audit", "export", "--format", "fhir", "--output", str(target)]
        )
        == 0
    )
    exported = target.read_text()
    bundle = json.loads(exported)
    Bundle.model_validate(bundle)  # the FHIR model of the whole bundle
    events = [entry["resource"] for entry in bundle["entry"]]
    for event in events:
        AuditEvent.model_validate(event)
    # No value left the trail: none of the synthetic PHI the requests carried.
    for value in ("Alpha", "Bravo", "Synthetic-Test", "987-65-4320", "+16175550199", "E11.9"):
        assert value not in exported

    def about(patient: str, interaction: str) -> list[dict]:
        return [
            e
            for e in events
            if e["entity"][0]["what"]["reference"] == f"Patient/{patient}"
            and e["subtype"][0]["code"] == interaction
        ]

    # BALP: each pattern's type, subtype, action, agent, source and patient entity.
    expected = {
        "create": ("C", "PatientCreate"),
        "read": ("R", "PatientRead"),
        "update": ("U", "PatientUpdate"),
        "search-type": ("E", "PatientQuery"),
    }
    # Only reads, writes and deletions of patients' data become AuditEvents.
    assert all(e["agent"][0].get("role") != [{"text": "COMPLIANCE_OFFICER"}] for e in events)
    for interaction, (action, pattern) in expected.items():
        [event, *_] = about(ids["first"], interaction)
        assert event["type"]["code"] == "rest" and event["subtype"][0]["system"] == INTERACTION
        assert event["action"] == action and event["outcome"] == "0"
        assert event["meta"]["profile"][0].endswith(f"IHE.BasicAudit.{pattern}")
        [agent] = event["agent"]
        assert agent["requestor"] is True and agent["who"]["identifier"]["value"]
        assert agent["network"]["type"] == "2"
        assert event["source"]["observer"]["display"].startswith("phigate@")
        patient = event["entity"][0]
        assert patient["role"]["code"] == "1" and patient["type"]["code"] == "1"
        assert all(d["valueString"].count(".") == 1 for d in patient["detail"])  # coordinates
    # Purpose of use as HL7 v3 ActReason codes; break-glass marked as such.
    [treat, *_] = about(ids["first"], "read")
    assert treat["purposeOfEvent"][0]["coding"][0]["system"] == ACT_REASON
    reads = about(ids["first"], "read")
    assert {"TREAT"} in [_codes(e["purposeOfEvent"]) for e in reads]
    assert {"ETREAT", "BTG"} in [_codes(e["purposeOfEvent"]) for e in reads]
    [payment] = about(ids["second"], "search-type")
    assert _codes(payment["purposeOfEvent"]) == {"HPAYMT"}
    assert payment["agent"][0]["role"] == [{"text": "BILLING"}]

    # Each resource names the stored entries it came from and the chain hash sealing
    # each: re-verifiable against the trail.
    async with admin_engine.connect() as connection:
        rows = await connection.execute(text("SELECT event_id::text, chain_hash FROM audit.chain"))
        sealed = {event_id: chain_hash for event_id, chain_hash in rows}
    links = [
        {part["url"]: part["valueString"] for part in extension["extension"]}
        for event in events
        for extension in event["extension"]
    ]
    assert links and all(sealed[link["entry"]] == link["chainHash"] for link in links)


async def test_one_patients_accounting_of_disclosures_as_ndjson(
    as_role: AsRole,
    external_database: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    ids = await _traffic(as_role)
    target = tmp_path / "patient.ndjson"
    # The id as an operator may type it (upper case): the same patient.
    command = ["audit", "export", "--format", "fhir-ndjson", "--patient", ids["second"].upper()]
    assert await asyncio.to_thread(main, [*command, "--output", str(target)]) == 0
    events = [json.loads(line) for line in target.read_text().splitlines()]
    for event in events:
        AuditEvent.model_validate(event)
    assert {e["entity"][0]["what"]["reference"] for e in events} == {f"Patient/{ids['second']}"}
    assert {e["subtype"][0]["code"] for e in events} == {"create", "search-type"}
