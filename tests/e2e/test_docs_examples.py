"""The examples in docs/ run against the gateway, so they stay true."""

from __future__ import annotations

import json
import re
from pathlib import Path

from domain.purposes import Purpose
from domain.roles import Role
from tests.conftest import AsRole
from tests.graph.queries import CREATE_PATIENT, patient_input

DOCS = Path(__file__).resolve().parents[2] / "docs"


def blocks(page: str, language: str) -> list[str]:
    text = (DOCS / page).read_text(encoding="utf-8")
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


async def test_enforcement_variable_default_example(as_role: AsRole) -> None:
    clinician = await as_role(Role.CLINICIAN, Purpose.TREATMENT)
    created = await clinician(CREATE_PATIENT, {"input": patient_input()})
    patient_id = created.ok()["patientCreate"]["patient"]["id"]
    [document] = blocks("enforcement.md", "graphql")
    [expected] = blocks("enforcement.md", "json")
    billing = await as_role(Role.BILLING, Purpose.PAYMENT)
    response = await billing(document.replace("<a patient id>", patient_id))
    wanted = json.loads(expected.replace("…", "x"))
    assert response.data is wanted["data"] is None
    [error], [want] = response.errors, wanted["errors"]
    assert error["message"] == want["message"]
    for key in ("code", "field", "path"):
        assert error["extensions"][key] == want["extensions"][key]


async def test_compliance_breach_lifecycle_example(as_role: AsRole) -> None:
    """docs/compliance.md: report, assess and confirm a breach, then its deadlines."""
    clinician = await as_role(Role.CLINICIAN, Purpose.TREATMENT)
    created = await clinician(CREATE_PATIENT, {"input": patient_input()})
    patient_id = created.ok()["patientCreate"]["patient"]["id"]
    lifecycle, deadlines = blocks("compliance.md", "graphql")
    report, assess, confirm = lifecycle.strip().split("\n\n")
    officer = await as_role(Role.COMPLIANCE_OFFICER, Purpose.COMPLIANCE)
    reported = (await officer(report.replace("<a patient id>", patient_id))).ok()
    breach = reported["breachReport"]["breach"]
    assert (breach["status"], breach["affectedCount"]) == ("REPORTED", 1)
    assert breach["jurisdictions"][0]["affectedCount"] == 1
    assessed = (await officer(assess.replace("<the breach id>", breach["id"]))).ok()
    assert assessed["breachUpdate"]["breach"]["status"] == "UNDER_ASSESSMENT"
    confirmed = (await officer(confirm.replace("<the breach id>", breach["id"]))).ok()
    assert confirmed["breachUpdate"]["breach"]["status"] == "CONFIRMED_BREACH"
    assert confirmed["breachUpdate"]["breach"]["riskAssessment"]["conclusion"] == (
        "BREACH_PRESUMED"
    )
    # Due within 60 days of 2026-11-20, or overdue since: listed either way.
    due = {entry["id"]: entry for entry in (await officer(deadlines)).ok()["breachDeadlines"]}
    individuals = [d for d in due[breach["id"]]["deadlines"] if d["recipient"] == "INDIVIDUALS"]
    assert [d["dueOn"] for d in individuals] == ["2027-01-19"]


def test_policy_review_explain_example() -> None:
    """docs/policy-review.md shows `phigate policy explain` for its document as it is."""
    from graph.enforcement.explain import explain, render
    from graph.http.app import load_policy
    from graph.schema import schema
    from graph.settings import Settings

    [document] = blocks("policy-review.md", "graphql")
    [shown] = blocks("policy-review.md", "text")
    answer = render(explain(schema._schema, load_policy(Settings()), document))
    assert answer == shown.rstrip("\n"), "docs/policy-review.md is stale: paste the output"
