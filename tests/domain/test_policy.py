from __future__ import annotations

import pytest

from domain.authorization import Access, decide, purpose_denial
from domain.permissions import Permission, RowScope
from domain.policy import PolicyError, bundled_policy, parse_policy
from domain.principals import Human, Service
from domain.purposes import Purpose
from domain.roles import Role, ServiceScope

ROLES_OK = "\n".join(f"[roles.{role.value}]" for role in Role)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (ROLES_OK + "\n[roles.JANITOR]\n", "unknown role 'JANITOR'"),
        ("[roles.CLINICIAN]\n", "no entry for role(s)"),
        (
            ROLES_OK.replace("[roles.NURSE]", '[roles.NURSE]\nread.TREATMENT = ["GOSSIP"]'),
            "unknown data class(es) GOSSIP",
        ),
        (
            ROLES_OK.replace("[roles.NURSE]", '[roles.NURSE]\nread.LUNCH = ["CLINICAL"]'),
            "unknown purpose in roles.NURSE.read 'LUNCH'",
        ),
        (
            ROLES_OK.replace("[roles.NURSE]", '[roles.NURSE]\nread."*" = ["CLINICAL"]'),
            "PHI (CLINICAL) must be tied to a purpose of use",
        ),
        (
            ROLES_OK.replace("[roles.NURSE]", '[roles.NURSE]\npermissions = ["FLY"]'),
            "unknown permission",
        ),
        (
            ROLES_OK.replace("[roles.NURSE]", '[roles.NURSE]\nrow_scope = "SOME"'),
            "unknown row_scope",
        ),
        (ROLES_OK.replace("[roles.NURSE]", "[roles.NURSE]\ncolour = 1"), "unknown key(s) colour"),
        (ROLES_OK + '\n[scopes."everything:all"]\n', "unknown scope 'everything:all'"),
        (ROLES_OK + "\n[extras]\n", "unknown section(s): extras"),
        ("not = [valid", "not valid TOML"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_policy(text)


def test_the_bundled_policy_states_the_intended_examples() -> None:
    policy = bundled_policy()
    billing = policy.roles[Role.BILLING]
    assert {"IDENTITY", "IDENTIFIER", "FINANCIAL"} <= billing.readable(Purpose.PAYMENT)
    assert "CLINICAL" not in set().union(*(billing.readable(p) for p in Purpose))
    auditor = policy.roles[Role.AUDITOR]
    assert "AUDIT" in auditor.readable(Purpose.COMPLIANCE)
    phi = {"IDENTITY", "CONTACT", "IDENTIFIER", "CLINICAL", "FINANCIAL"}
    for role in (Role.AUDITOR, Role.ANALYST, Role.ADMIN):
        reads = set().union(*(policy.roles[role].readable(p) for p in [None, *Purpose]))
        assert not reads & phi, role
    assert set().union(*(policy.roles[Role.ANALYST].readable(p) for p in Purpose)) == {
        "PUBLIC",
        "DEIDENTIFIED",
    }
    assert Permission.USER_MANAGE in policy.roles[Role.ADMIN].permissions
    assert policy.roles[Role.CLINICIAN].row_scope is RowScope.CARE_TEAM
    assert policy.roles[Role.NURSE].row_scope is RowScope.CARE_TEAM
    assert policy.roles[Role.CLINICIAN].break_glass and not policy.roles[Role.NURSE].break_glass


def test_a_service_gets_the_union_of_its_scopes() -> None:
    policy = bundled_policy()
    grant = policy.grant(
        Service("c", frozenset({ServiceScope.BAAS_READ, ServiceScope.PATIENTS_READ}))
    )
    assert {Permission.BAA_READ, Permission.PATIENT_RECORDS_READ} <= grant.permissions
    assert grant.row_scope is RowScope.ALL
    assert "CLINICAL" in grant.readable(Purpose.TREATMENT)
    assert policy.grant(None).permissions == frozenset()


def test_decisions() -> None:
    grant = bundled_policy().roles[Role.BILLING]
    read = lambda cls, perm=None: Access("T.f", "t.f", cls, perm)  # noqa: E731
    assert decide(grant, "billing", Purpose.PAYMENT, [read("FINANCIAL"), read("PUBLIC")]).allowed
    assert (
        decide(grant, "billing", Purpose.PAYMENT, [read("CLINICAL")]).denials[0].code
        == "FORBIDDEN_FIELD"
    )
    assert decide(grant, "billing", None, [read("FINANCIAL")]).denials[0].code == "PURPOSE_REQUIRED"
    assert decide(grant, "billing", None, [read(None)]).denials[0].code == "UNCLASSIFIED_FIELD"
    assert (
        decide(grant, "billing", Purpose.PAYMENT, [read("PUBLIC", Permission.BAA_READ)])
        .denials[0]
        .code
        == "FORBIDDEN_OPERATION"
    )
    writing_id = Access("In.id", "m.input.id", "PUBLIC", write=True)
    assert decide(
        grant, "billing", Purpose.PAYMENT, [writing_id]
    ).allowed  # a reference, not a write
    allowed = decide(grant, "billing", Purpose.PAYMENT, [read("FINANCIAL"), read("IDENTITY")])
    assert allowed.phi_fields == {"T.f"}


@pytest.mark.parametrize(
    ("role", "raw", "reason", "code"),
    [
        (Role.CLINICIAN, None, False, None),
        (Role.CLINICIAN, "treatment", False, None),
        (Role.CLINICIAN, "GOSSIP", False, "PURPOSE_UNKNOWN"),
        (Role.CLINICIAN, "PAYMENT", False, "PURPOSE_NOT_ALLOWED"),
        (Role.CLINICIAN, "EMERGENCY", False, "BREAK_GLASS_REASON_REQUIRED"),
        (Role.CLINICIAN, "EMERGENCY", True, None),
        (Role.NURSE, "EMERGENCY", True, "PURPOSE_NOT_ALLOWED"),
    ],
)
def test_purpose_declarations(role: Role, raw: str | None, reason: bool, code: str | None) -> None:
    grant = bundled_policy().grant(Human("u", role, "s"))
    _, denial = purpose_denial(grant, role.value, raw, has_reason=reason)
    assert (denial.code if denial else None) == code
