"""The pre-deployment checklist's validations, one test per item, named after it
(C1 to C18 Critical, I1 to I12 Important, in the checklist's order). Each performs the
item's own "Validate" step against phigate as it runs. `phigate compliance evidence`
runs the deployment-level ones against a configured deployment."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.purposes import Purpose
from domain.roles import Role
from tests.conftest import AsRole
from tests.graph.queries import CREATE_PATIENT, patient_input

ADD = "mutation($i: CareTeamInput!) { careTeamAdd(input: $i) { membership { patientId } } }"
REMOVE = "mutation($i: CareTeamInput!) { careTeamRemove(input: $i) { membership { patientId } } }"
EVENTS = """query($patient: ID!) {
  auditEvents(filter: {patientId: $patient}, first: 50) {
    edges { node { category action outcome actorId reason recordId requestId } }
  }
}"""


async def _nurse_id(admin) -> str:
    users = (await admin("{ users { id role } }")).ok()["users"]
    return next(user["id"] for user in users if user["role"] == "NURSE")


async def test_I2_care_team_grants_and_removals_are_audited_and_kept(
    as_role: AsRole, admin_engine: AsyncEngine
) -> None:
    """Administrative actions are auditable: a grant of PHI access (care-team membership)
    and its removal each write a security event, and the history survives the removal."""
    clinician = await as_role(Role.CLINICIAN, Purpose.TREATMENT)
    created = await clinician(CREATE_PATIENT, {"input": patient_input()})
    patient_id = created.ok()["patientCreate"]["patient"]["id"]
    admin = await as_role(Role.ADMIN)
    await as_role(Role.NURSE, Purpose.TREATMENT)
    nurse_id = await _nurse_id(admin)
    membership = {"i": {"patientId": patient_id, "userId": nurse_id}}
    assert (await admin(ADD, membership)).ok()
    assert (await admin(REMOVE, membership)).ok()

    officer = await as_role(Role.COMPLIANCE_OFFICER, Purpose.COMPLIANCE)
    events = [
        edge["node"]
        for edge in (await officer(EVENTS, {"patient": patient_id})).ok()["auditEvents"]["edges"]
        if edge["node"]["category"] == "SECURITY"
    ]
    actions = sorted(event["action"] for event in events)
    assert actions == ["CARE_TEAM_MEMBER_ADDED", "CARE_TEAM_MEMBER_REMOVED"]
    for event in events:
        assert event["outcome"] == "ALLOWED"
        assert event["reason"] == f"USER:{nurse_id}"
        assert event["recordId"] == patient_id
        assert event["actorId"] and event["requestId"]

    async with admin_engine.connect() as connection:
        history = (
            await connection.execute(
                text(
                    "SELECT change, user_id FROM phigate.care_team_changes"
                    " WHERE patient_id = :patient ORDER BY changed_at, change"
                ),
                {"patient": uuid.UUID(patient_id)},
            )
        ).all()
    # The registering clinician's own membership, then the nurse's grant and removal.
    assert [change for change, _ in history] == ["ADDED", "ADDED", "REMOVED"]
    assert [str(user) for _, user in history[1:]] == [nurse_id, nurse_id]


async def test_I2_the_gateway_cannot_rewrite_care_team_history(app_engine: AsyncEngine) -> None:
    async with app_engine.connect() as connection:
        privileges = (
            await connection.execute(
                text(
                    "SELECT has_table_privilege('phigate.care_team_changes', p)"
                    " FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) p"
                )
            )
        ).scalars()
        assert list(privileges) == [True, True, False, False, False]
