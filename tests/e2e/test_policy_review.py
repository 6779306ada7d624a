"""The policy as a reviewable artefact: `phigate policy explain` says, before anyone
runs an operation, who may run it for what purpose and which PHI it touches, and it
agrees with what the gateway then does; `phigate policy diff` names exactly the cells
and the registered operations a change affects, and its exit code says whether
anything widened."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from domain.purposes import Purpose
from domain.roles import Role
from graph.cli import main
from tests.conftest import AsRole
from tests.e2e.test_cli import ROOT, external_database  # noqa: F401 (a fixture)

CHART = (
    "query Chart { patients(first: 2) { edges { node { givenName diagnoses { icd10Code } } } } }"
)
PAYER = "query Payer { patients(first: 2) { edges { node { mrn insurancePayer } } } }"
CODES = "query Codes { patients(first: 2) { edges { node { diagnoses { icd10Code } } } } }"
UPDATE = "mutation Update($input: PatientUpdateInput!) { patientUpdate(input: $input) { patient { id } } }"


def explained(capsys: pytest.CaptureFixture[str], path: Path) -> dict[str, dict]:
    capsys.readouterr()
    assert main(["policy", "explain", str(path), "--format", "json"]) == 0
    return {e["operation"]: e for e in json.loads(capsys.readouterr().out)}


def verdict(explanation: dict, who: str, purpose: str | None) -> dict:
    return next(v for v in explanation["verdicts"] if v["who"] == who and v["purpose"] == purpose)


def test_explain_names_who_may_run_what_and_the_phi_it_touches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = tmp_path / "ops.graphql"
    document.write_text("\n".join((CHART, PAYER, UPDATE)))
    ops = explained(capsys, document)
    assert ops["Payer"]["allowed_for"] == [
        "role BILLING / PAYMENT",
        "scope patients:read / PAYMENT",
    ]
    payer = verdict(ops["Payer"], "role BILLING", "PAYMENT")
    assert payer["reads"] == ["Patient.insurancePayer", "Patient.mrn"]
    assert payer["categories"] == ["FINANCIAL", "IDENTIFIER"]
    refused = verdict(ops["Chart"], "role BILLING", "PAYMENT")
    assert not refused["allowed"]
    assert refused["refusals"][0].startswith("FORBIDDEN_FIELD Patient.diagnoses")
    # A mutation whose input comes in a variable: a clinician may update for treatment
    # as long as the input leaves out what it may not write (the payer).
    update = verdict(ops["Update"], "role CLINICIAN", "TREATMENT")
    assert (update["allowed"], update["allowed_for_some_inputs"]) == (False, True)
    assert [r.split(":")[0] for r in update["refusals"]] == [
        "FORBIDDEN_FIELD PatientUpdateInput.insurancePayer"
    ]
    capsys.readouterr()
    assert main(["policy", "explain", str(document), "--operation", "Payer"]) == 0
    table = capsys.readouterr().out
    assert "ALLOWED  role BILLING" in table and "Chart" not in table


@pytest.mark.parametrize(
    ("role", "purpose"),
    [
        (Role.CLINICIAN, Purpose.TREATMENT),
        (Role.BILLING, Purpose.PAYMENT),
        (Role.BILLING, Purpose.TREATMENT),
        (Role.ANALYST, Purpose.RESEARCH),
        (Role.COMPLIANCE_OFFICER, Purpose.COMPLIANCE),
    ],
)
async def test_explain_agrees_with_the_gateway(
    as_role: AsRole, seeded: int, role: Role, purpose: Purpose
) -> None:
    """Differential: for each operation, what explain says is what the gateway does."""
    from graph.enforcement.explain import explain
    from graph.http.app import load_policy
    from graph.schema import schema
    from graph.settings import Settings

    policy = load_policy(Settings())
    caller = await as_role(role, purpose)
    for document in (CHART, PAYER, CODES):
        [explanation] = explain(schema._schema, policy, document)
        said = next(
            v
            for v in explanation.verdicts
            if v.who == f"role {role.value}" and v.purpose == purpose.value
        )
        answer = await caller(document)
        refused_codes = {error["extensions"]["code"] for error in answer.errors or []}
        if said.allowed:
            assert answer.data is not None and not refused_codes, (document, answer.errors)
        else:
            assert answer.data is None
            assert {r.split()[0] for r in said.refusals} == refused_codes


def test_diff_names_exactly_the_cells_and_registered_operations_a_change_affects(
    external_database: str,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = []
    for name, document in (("chart", CHART), ("payer", PAYER), ("codes", CODES)):
        path = tmp_path / f"{name}.graphql"
        path.write_text(document + "\n")
        files.append(str(path))
    assert main(["operations", "register", *files]) == 0
    registered = {
        Path(entry["file"]).stem: f"sha256:{entry['sha256'][:12]}"
        for entry in json.loads(capsys.readouterr().out)["registered"]
    }
    bundled = (ROOT / "domain" / "policy.toml").read_text()
    # Billing may now read clinical data for payment: a widening.
    wider = tmp_path / "wider.toml"
    wider.write_text(
        bundled.replace(
            'read.PAYMENT = ["IDENTITY", "IDENTIFIER", "FINANCIAL"]',
            'read.PAYMENT = ["IDENTITY", "IDENTIFIER", "FINANCIAL", "CLINICAL"]',
            1,
        )
    )
    assert main(["policy", "diff", "bundled", str(wider), "--registered"]) == 1
    change = json.loads(capsys.readouterr().out)
    assert change["widens"] is True
    assert change["widened"] == ["role BILLING / PAYMENT: may now read CLINICAL"]
    assert change["narrowed"] == []
    # The two operations that read diagnoses; the payer's was allowed already.
    assert change["operations_newly_allowed"] == sorted(
        f"{registered[name]}: role BILLING / PAYMENT" for name in ("chart", "codes")
    )
    assert change["operations_newly_refused"] == []
    # The reverse is a narrowing only: exit 0, and who loses what is named.
    assert main(["policy", "diff", str(wider), "bundled", "--registered"]) == 0
    change = json.loads(capsys.readouterr().out)
    assert change["widens"] is False
    assert change["narrowed"] == ["role BILLING / PAYMENT: may no longer read CLINICAL"]
    assert change["operations_newly_refused"] == sorted(
        f"{registered[name]}: role BILLING / PAYMENT" for name in ("chart", "codes")
    )
    # The same policy changes nothing.
    assert main(["policy", "diff", "bundled", "bundled", "--operations", *files]) == 0
    assert json.loads(capsys.readouterr().out)["widened"] == []


def test_explain_tries_the_fields_a_boolean_variable_switches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`@skip(if: $hide)`: explained both ways, the skipped field counts (found in review:
    with every Boolean true, a skipped field was never seen)."""
    document = tmp_path / "skip.graphql"
    document.write_text(
        'query Q($hide: Boolean!) { patient(id: "00000000-0000-4000-8000-000000000000")'
        " { id ssn @skip(if: $hide) } }\n"
    )
    [explanation] = explained(capsys, document).values()
    nurse = verdict(explanation, "role NURSE", "TREATMENT")
    assert (nurse["allowed"], nurse["allowed_for_some_inputs"]) == (False, True)
    assert nurse["refusals"][0].startswith("FORBIDDEN_FIELD Patient.ssn")
    assert verdict(explanation, "role BILLING", "PAYMENT")["reads"] == ["Patient.ssn"]


def test_diff_counts_a_new_break_glass_as_a_widening(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundled = (ROOT / "domain" / "policy.toml").read_text()
    start = bundled.index("[roles.NURSE]")
    section_end = bundled.index("\n\n", start)
    wider = tmp_path / "nurse-break-glass.toml"
    wider.write_text(bundled[:section_end] + "\nbreak_glass = true" + bundled[section_end:])
    capsys.readouterr()
    assert main(["policy", "diff", "bundled", str(wider)]) == 1
    change = json.loads(capsys.readouterr().out)
    assert "role NURSE: may now break the glass (reach outside its rows)" in change["widened"]
