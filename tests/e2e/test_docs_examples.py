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
