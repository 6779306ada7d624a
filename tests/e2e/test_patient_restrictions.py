"""Patient restrictions enforced by the same policy: a diagnosis the patient paid for out
of pocket and asked to keep from their health plan is absent from every read for
PAYMENT or OPERATIONS (and the restriction applied is audited), and a patient who revoked
research consent is not counted in de-identified analytics."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.purposes import Purpose
from domain.roles import Role
from graph.settings import Settings
from tests.conftest import FAST_HASHING, TEST_KEYS, AsRole
from tests.graph.queries import CREATE_PATIENT, patient_input

ROOT = Path(__file__).resolve().parents[2]
RESTRICT = (
    "mutation($i: DiagnosisRestrictionInput!) { diagnosisPayerRestriction(input: $i)"
    " { diagnosisId patientId payerRestricted } }"
)
CODES = "query($id: ID!) { patient(id: $id) { diagnoses { icd10Code } } }"
COUNTS = "{ deidentifiedCounts(by: AGE_BAND) { total } }"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # A claims integration's policy: billing reads diagnosis codes for payment (what a
    # claim needs), which is exactly where a restriction must hold.
    policy = (ROOT / "domain" / "policy.toml").read_text()
    wider = policy.replace(
        'read.PAYMENT = ["IDENTITY", "IDENTIFIER", "FINANCIAL"]',
        'read.PAYMENT = ["IDENTITY", "IDENTIFIER", "FINANCIAL", "CLINICAL"]',
        1,
    )
    assert wider != policy
    (tmp_path / "policy.toml").write_text(wider)
    return Settings(**TEST_KEYS, **FAST_HASHING, policy_file=tmp_path / "policy.toml")


async def test_a_restricted_diagnosis_never_reaches_the_health_plan(
    as_role: AsRole, admin_engine: AsyncEngine
) -> None:
    clinician = await as_role(Role.CLINICIAN, Purpose.TREATMENT)
    diagnoses = [
        {"icd10Code": "F32.9", "onsetDate": "2020-01-01"},
        {"icd10Code": "I10", "onsetDate": "2021-01-01"},
    ]
    created = await clinician(CREATE_PATIENT, {"input": patient_input(diagnoses=diagnoses)})
    patient = created.ok()["patientCreate"]["patient"]
    listed = (
        await clinician(
            "query($id: ID!) { patient(id: $id) { diagnoses { id icd10Code payerRestricted } } }",
            {"id": patient["id"]},
        )
    ).ok()["patient"]["diagnoses"]
    private = next(d["id"] for d in listed if d["icd10Code"] == "F32.9")
    assert not any(d["payerRestricted"] for d in listed)

    # At the patient's request, the clinician withholds one diagnosis from the plan.
    done = await clinician(RESTRICT, {"i": {"diagnosisId": private, "restricted": True}})
    assert done.ok()["diagnosisPayerRestriction"] == {
        "diagnosisId": private,
        "patientId": patient["id"],
        "payerRestricted": True,
    }
    again = await clinician(RESTRICT, {"i": {"diagnosisId": private, "restricted": True}})
    assert again.codes == ["BAD_USER_INPUT"]

    billing = await as_role(Role.BILLING, Purpose.PAYMENT)
    # Twice: the second read has a plan (reads of diagnoses are planned), and the
    # restriction holds there too.
    for _ in range(2):
        for_payment = (await billing(CODES, {"id": patient["id"]})).ok()["patient"]["diagnoses"]
        assert for_payment == [{"icd10Code": "I10"}]  # absent, not an error
    # Other purposes are unaffected.
    treating = (await clinician(CODES, {"id": patient["id"]})).ok()["patient"]["diagnoses"]
    assert sorted(d["icd10Code"] for d in treating) == ["F32.9", "I10"]

    # Lifting it (also at the patient's request) makes it disclosable again.
    lifted = await clinician(RESTRICT, {"i": {"diagnosisId": private, "restricted": False}})
    assert lifted.ok()["diagnosisPayerRestriction"]["payerRestricted"] is False
    for_payment = (await billing(CODES, {"id": patient["id"]})).ok()["patient"]["diagnoses"]
    assert sorted(d["icd10Code"] for d in for_payment) == ["F32.9", "I10"]

    # A restriction recorded, applied and lifted, each in the trail (ids, never codes).
    async with admin_engine.connect() as connection:
        actions = (
            await connection.execute(
                text(
                    "SELECT action, role, purpose FROM audit.events WHERE record_id = :p"
                    " AND action LIKE 'PAYER_RESTRICTION_%' ORDER BY id"
                ),
                {"p": patient["id"]},
            )
        ).all()
    assert [tuple(a) for a in actions] == [
        ("PAYER_RESTRICTION_SET", "CLINICIAN", "TREATMENT"),
        ("PAYER_RESTRICTION_APPLIED", "BILLING", "PAYMENT"),
        ("PAYER_RESTRICTION_APPLIED", "BILLING", "PAYMENT"),
        ("PAYER_RESTRICTION_LIFTED", "CLINICIAN", "TREATMENT"),
    ]


async def test_only_roles_that_write_consent_may_restrict(as_role: AsRole) -> None:
    clinician = await as_role(Role.CLINICIAN, Purpose.TREATMENT)
    created = await clinician(CREATE_PATIENT, {"input": patient_input()})
    patient_id = created.ok()["patientCreate"]["patient"]["id"]
    [diagnosis] = (
        await clinician(
            "query($id: ID!) { patient(id: $id) { diagnoses { id } } }", {"id": patient_id}
        )
    ).ok()["patient"]["diagnoses"]
    restrict = {"i": {"diagnosisId": diagnosis["id"], "restricted": True}}
    billing = await as_role(Role.BILLING, Purpose.PAYMENT)
    assert set((await billing(RESTRICT, restrict)).codes) == {"FORBIDDEN_FIELD"}
    analyst = await as_role(Role.ANALYST, Purpose.RESEARCH)
    assert "FORBIDDEN_OPERATION" in (await analyst(RESTRICT, restrict)).codes
    other = await as_role(Role.CLINICIAN, Purpose.TREATMENT)  # not on the care team
    assert (await other(RESTRICT, restrict)).codes == ["NOT_FOUND"]


async def test_research_counts_leave_out_patients_who_opted_out(
    as_role: AsRole, admin_engine: AsyncEngine, seeded: int
) -> None:
    analyst = await as_role(Role.ANALYST, Purpose.RESEARCH)
    before = (await analyst(COUNTS)).ok()["deidentifiedCounts"]["total"]
    assert before == seeded
    async with admin_engine.begin() as connection:
        # Three patients revoke research consent; a fourth revoked, then granted again.
        patients = (
            (await connection.execute(text("SELECT id FROM phigate.patients ORDER BY id LIMIT 4")))
            .scalars()
            .all()
        )
        for patient in patients[:3]:
            await connection.execute(
                text(
                    "INSERT INTO phigate.consents (patient_id, consent_type, status,"
                    " effective_date) VALUES (:p, 'RESEARCH', 'REVOKED', '2026-01-01')"
                ),
                {"p": patient},
            )
        for status, day in (("REVOKED", "2025-01-01"), ("GRANTED", "2026-01-01")):
            await connection.execute(
                text(
                    "INSERT INTO phigate.consents (patient_id, consent_type, status,"
                    " effective_date) VALUES (:p, 'RESEARCH', :s, :d)"
                ),
                {
                    "p": patients[3],
                    "s": status,
                    "d": date.fromisoformat(day),
                },
            )
    assert (await analyst(COUNTS)).ok()["deidentifiedCounts"]["total"] == seeded - 3
    # Nor for any other purpose: a difference between purposes would say where they are.
    operations = await as_role(Role.ANALYST, Purpose.OPERATIONS)
    assert (await operations(COUNTS)).ok()["deidentifiedCounts"]["total"] == seeded - 3


def test_policy_explain_names_both_restrictions(settings: Settings) -> None:
    from graph.enforcement.explain import PAYER_RESTRICTION, RESEARCH_OPT_OUT, explain
    from graph.http.app import load_policy
    from graph.schema import schema

    document = (
        "query Claims { patients(first: 5) { edges { node { diagnoses { icd10Code } } } } }\n"
        "query Counts { deidentifiedCounts(by: AGE_BAND) { total } }"
    )
    claims, counts = explain(schema._schema, load_policy(settings), document)

    def conditions(explanation, who: str, purpose: str) -> tuple[str, ...]:
        return next(
            v.conditions for v in explanation.verdicts if (v.who, v.purpose) == (who, purpose)
        )

    assert conditions(claims, "role BILLING", "PAYMENT") == (PAYER_RESTRICTION,)
    assert conditions(claims, "role CLINICIAN", "TREATMENT") == ()
    assert conditions(counts, "role ANALYST", "RESEARCH") == (RESEARCH_OPT_OUT,)
    assert conditions(counts, "role ANALYST", "OPERATIONS") == (RESEARCH_OPT_OUT,)
