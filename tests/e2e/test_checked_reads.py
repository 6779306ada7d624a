"""A person's planned read checks its session in its own statement (one round trip):
the database still checks the session on every request, and reads and audits nothing
unless it finds the caller the gateway decided for.

The gateway predicts the caller from the session's last check (graph/http/
authentication.Deferred); these tests change what the database holds between two
requests of one session (revocation, idle limit, role, row scope, break-glass, a
disabled account) and require each second request to be answered exactly as a
request whose session was checked first would be: refused, or answered for the caller
as the database now has it, with the audit entries to match. Over HTTP, as callers
send them.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from db.patients import planned_page_audited
from db.sessions import new_secret
from db.unit_of_work import RequestDatabase
from domain.permissions import RowScope
from domain.purposes import Purpose
from domain.roles import Role
from graph.execution.planner import PLANS
from tests.conftest import AsRole, StatementCounter
from tests.e2e.test_planned_execution import endpoint
from tests.graph.test_audit_trail import entries
from tests.graphql_client import GraphQLClient
from tests.identity import token_claims

PAGE = "{ patients(first: 3) { edges { node { id givenName familyName } } } }"


def _claims(caller: GraphQLClient) -> dict[str, Any]:
    return token_claims(caller.headers["Authorization"].removeprefix("Bearer "))


async def _admin(engine: AsyncEngine, sql: str, **values: Any) -> None:
    async with engine.begin() as connection:
        await connection.execute(text(sql), values)


async def _reads(engine: AsyncEngine, request_id: str) -> list[Any]:
    async with engine.connect() as connection:
        return list(
            (
                await connection.execute(
                    text(
                        "SELECT actor_id, role, field_path, record_ids FROM audit.events"
                        " WHERE request_id = :r AND category = 'ACCESS' AND outcome = 'ALLOWED'"
                        " ORDER BY field_path"
                    ),
                    {"r": request_id},
                )
            ).all()
        )


async def _events(engine: AsyncEngine, request_id: str) -> list[tuple[str, str | None]]:
    async with engine.connect() as connection:
        return [
            (row.action, row.reason)
            for row in await connection.execute(
                text("SELECT action, reason FROM audit.events WHERE request_id = :r"),
                {"r": request_id},
            )
        ]


@pytest.fixture
async def billing(as_role: AsRole, seeded: int) -> GraphQLClient:
    """A billing clerk whose first read has been answered (the session's check is then
    known, and the plan learnt): their next reads are the ones under test."""
    caller = await as_role(Role.BILLING, Purpose.PAYMENT)
    (await caller(PAGE)).ok()
    (await caller(PAGE)).ok()
    return caller


async def test_a_persons_read_is_one_statement_that_checks_the_session(
    billing: GraphQLClient, statements: StatementCounter, admin_engine: AsyncEngine
) -> None:
    before, checked = len(statements.statements), PLANS.checked
    answer = await billing(PAGE, headers={"X-Request-ID": "checked-one"})
    sent = statements.statements[before:]
    assert PLANS.checked == checked + 1
    assert len(sent) == 1 and "phigate.begin_request" in sent[0], sent
    assert len(answer.ok()["patients"]["edges"]) == 3
    reads = await _reads(admin_engine, "checked-one")
    assert [row.field_path for row in reads] == ["Patient.familyName", "Patient.givenName"]
    ids = sorted(edge["node"]["id"] for edge in answer.data["patients"]["edges"])
    assert all(sorted(str(i) for i in row.record_ids) == ids for row in reads)
    assert {row.role for row in reads} == {"BILLING"}


@pytest.mark.parametrize(
    ("ended", "claim", "request_id"),
    [
        ("UPDATE phigate.sessions SET revoked_at = now() WHERE id = :id", "sid",
         "checked-revoked"),
        ("UPDATE phigate.sessions SET last_seen_at = now() - interval '2 hours' WHERE id = :id",
         "sid", "checked-idle"),
        ("UPDATE phigate.users SET status = 'DISABLED' WHERE id = :id", "sub",
         "checked-disabled"),
    ],
    ids=["revoked", "idle", "account disabled"],
)  # fmt: skip
async def test_an_ended_session_is_refused_and_nothing_is_read(
    billing: GraphQLClient, admin_engine: AsyncEngine, ended: str, claim: str, request_id: str
) -> None:
    await _admin(admin_engine, ended, id=uuid.UUID(_claims(billing)[claim]))
    refused = await billing(PAGE, headers={"X-Request-ID": request_id})
    assert refused.status == 401
    assert "data" not in refused.body or refused.body.get("data") is None
    assert await _reads(admin_engine, request_id) == []
    assert ("ACCESS_TOKEN_REJECTED", "SESSION_ENDED") in await _events(admin_engine, request_id)


async def test_a_changed_role_is_decided_for_the_role_the_database_holds(
    billing: GraphQLClient, admin_engine: AsyncEngine
) -> None:
    """The token and the last check say BILLING; the database now says
    COMPLIANCE_OFFICER (the same row scope, so only the role differs), whose purposes do
    not include PAYMENT: the request is refused as a compliance officer's would be, and
    the refusal names the role the database holds."""
    await _admin(
        admin_engine,
        "UPDATE phigate.users SET role = 'COMPLIANCE_OFFICER' WHERE id = :id",
        id=uuid.UUID(_claims(billing)["sub"]),
    )
    answer = await billing(PAGE, headers={"X-Request-ID": "checked-role"})
    assert answer.data is None
    assert answer.errors[0]["extensions"]["code"] == "PURPOSE_NOT_ALLOWED"
    assert await _reads(admin_engine, "checked-role") == []
    async with admin_engine.connect() as connection:
        roles = (
            await connection.execute(
                text("SELECT DISTINCT role FROM audit.events WHERE request_id = 'checked-role'")
            )
        ).scalars()
        assert set(roles) == {"COMPLIANCE_OFFICER"}


async def test_a_narrowed_row_scope_reads_only_what_the_new_scope_reaches(
    billing: GraphQLClient, admin_engine: AsyncEngine
) -> None:
    await _admin(
        admin_engine,
        "UPDATE phigate.row_scope_ceilings SET row_scope = 'NONE' WHERE grantee = 'role:BILLING'",
    )
    try:
        answer = await billing(PAGE, headers={"X-Request-ID": "checked-scope"})
        assert answer.ok()["patients"]["edges"] == []
        assert await _reads(admin_engine, "checked-scope") == []
    finally:
        await _admin(
            admin_engine,
            "UPDATE phigate.row_scope_ceilings SET row_scope = 'ALL'"
            " WHERE grantee = 'role:BILLING'",
        )


async def test_another_sessions_secret_checks_nothing(
    billing: GraphQLClient, admin_engine: AsyncEngine, app_engine: AsyncEngine, seeded: int
) -> None:
    """The statement itself, as the application role: a wrong secret (or a session that
    is not the expected caller's) reads nothing and writes no audit entry."""
    claims = _claims(billing)
    compiled = planned_page_audited(("given_name",), RowScope.ALL, False, True)
    base = {
        "actor": None,
        "limit": 3,
        "occurred_at": None,
        "actor_id": claims["sub"],
        "actor_kind": "USER",
        "role": "BILLING",
        "session_id": uuid.UUID(claims["sid"]),
        "purpose": "PAYMENT",
        "break_glass": False,
        "operation_name": None,
        "document_hash": "0" * 64,
        "client_ip": None,
        "user_agent": None,
        "request_id": "checked-direct",
        "audit_fields": ["Patient.givenName"],
        "audit_classes": ["DEMOGRAPHIC"],
        "check_session": uuid.UUID(claims["sid"]),
        "check_secret": claims["ssk"],
        "check_scopes": [],
        "check_idle": 900.0,
        "check_touch": 15.0,
        "expect_kind": "USER",
        "expect_actor": claims["sub"],
        "expect_role": "BILLING",
        "expect_row_scope": "ALL",
        "expect_scopes": [],
    }
    base["occurred_at"] = datetime.now(UTC)
    cases = {
        "right": {},
        "wrong secret": {"check_secret": new_secret()[0]},  # a fresh one, not the session's
        "other actor": {"expect_actor": str(uuid.uuid4())},
        "other role": {"expect_role": "CLINICIAN"},
        "other scope": {"expect_row_scope": "CARE_TEAM"},
        "other granted scopes": {"expect_scopes": ["patients:read"]},
    }
    async with app_engine.connect() as connection:
        raw = (await connection.get_raw_connection()).driver_connection
        for name, change in cases.items():
            values = {**base, **change, "request_id": f"checked-direct-{len(name)}-{name[:5]}"}
            rows = await raw.fetch(compiled.sql, *compiled.arguments(values))
            read = [row for row in rows if row["id"] is not None]
            entries = await _reads(admin_engine, values["request_id"])
            if name == "right":
                assert rows[0]["session_checked"] == 1 and len(read) == 3, name
                assert len(entries) == 1, name
            else:
                assert [row["session_checked"] for row in rows] == [0], name
                assert read == [] and entries == [], name


async def test_an_open_break_glass_episode_is_named_in_the_audit(
    as_role: AsRole, seeded: int, admin_engine: AsyncEngine
) -> None:
    """A clinician sees only their care team's patients; one opened break-glass for a
    patient: the read that follows goes through the usual check, which names the
    episode in the audit entries of that patient."""
    reason = "Synthetic test: unconscious patient in the emergency department"
    clinician = await as_role(Role.CLINICIAN, Purpose.TREATMENT)
    sub = uuid.UUID(_claims(clinician)["sub"])
    async with admin_engine.connect() as connection:
        patient = (
            await connection.execute(text("SELECT id FROM phigate.patients ORDER BY id LIMIT 1"))
        ).scalar_one()
    (await clinician(PAGE)).ok()
    (await clinician(PAGE)).ok()  # the plan is learnt and the session's check known
    await _admin(
        admin_engine,
        "INSERT INTO phigate.break_glass_episodes (user_id, patient_id, reason, expires_at)"
        " VALUES (:u, :p, :r, now() + interval '1 hour')",
        u=sub,
        p=patient,
        r=reason,
    )
    answer = await clinician(
        "{ patients(first: 50) { edges { node { id givenName } } } }",
        headers={"X-Request-ID": "checked-glass"},
    )
    ids = [edge["node"]["id"] for edge in answer.ok()["patients"]["edges"]]
    assert str(patient) in ids
    async with admin_engine.connect() as connection:
        named = (
            await connection.execute(
                text(
                    "SELECT count(*) FROM audit.events WHERE request_id = 'checked-glass'"
                    " AND break_glass_episode_id IS NOT NULL AND :p = ANY (record_ids)"
                ),
                {"p": patient},
            )
        ).scalar_one()
    assert named >= 1


@pytest.fixture
async def reader(service: Any, seeded: int) -> GraphQLClient:
    """An OAuth2 client with patients:read whose first reads have been answered."""
    caller = await service("patients:read", purpose=Purpose.PAYMENT)
    (await caller(PAGE)).ok()
    (await caller(PAGE)).ok()
    return caller


async def test_a_services_read_is_one_statement_too(
    reader: GraphQLClient, statements: StatementCounter, admin_engine: AsyncEngine
) -> None:
    before, checked = len(statements.statements), PLANS.checked
    answer = await reader(PAGE, headers={"X-Request-ID": "checked-service"})
    assert PLANS.checked == checked + 1
    assert len(statements.statements[before:]) == 1
    assert len(answer.ok()["patients"]["edges"]) == 3
    reads = await _reads(admin_engine, "checked-service")
    assert {row.actor_id for row in reads} == {_claims(reader)["client_id"]}


async def test_a_service_whose_scope_was_withdrawn_is_decided_without_it(
    reader: GraphQLClient, admin_engine: AsyncEngine
) -> None:
    await _admin(
        admin_engine,
        "UPDATE phigate.oauth_clients SET scopes = '{breaches:read}' WHERE client_id = :c",
        c=_claims(reader)["client_id"],
    )
    answer = await reader(PAGE, headers={"X-Request-ID": "checked-scope-withdrawn"})
    assert answer.data is None
    assert await _reads(admin_engine, "checked-scope-withdrawn") == []


async def test_a_disabled_client_is_refused(
    reader: GraphQLClient, admin_engine: AsyncEngine
) -> None:
    await _admin(
        admin_engine,
        "UPDATE phigate.oauth_clients SET status = 'DISABLED' WHERE client_id = :c",
        c=_claims(reader)["client_id"],
    )
    refused = await reader(PAGE, headers={"X-Request-ID": "checked-client-disabled"})
    assert refused.status == 401
    assert await _reads(admin_engine, "checked-client-disabled") == []


async def test_a_fallback_releases_the_statements_connection_before_taking_another(
    billing: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found in review: a one-statement read that fell back (a patient not found) kept
    its connection while the usual check took a second one; a few concurrent requests
    for missing patients could hold the whole pool waiting for itself."""
    used: list[RequestDatabase] = []
    held_at_open: list[bool] = []
    alone, opened = RequestDatabase.fetch_alone, RequestDatabase.open

    async def spy_alone(self: RequestDatabase, sql: str, *args: object) -> list[object]:
        used.append(self)
        return await alone(self, sql, *args)

    async def spy_open(self: RequestDatabase) -> None:
        held_at_open.append(any(db.is_open for db in used))
        await opened(self)

    monkeypatch.setattr(RequestDatabase, "fetch_alone", spy_alone)
    monkeypatch.setattr(RequestDatabase, "open", spy_open)
    one = "query One($id: ID!) { patient(id: $id) { id givenName } }"
    missing = {"id": str(uuid.uuid4())}
    await billing(one, missing)  # learns the plan
    answer = await billing(one, missing)
    assert answer.errors[0]["extensions"]["code"] == "NOT_FOUND"
    assert used, "the read was not tried as one statement"
    assert held_at_open == [False, False]  # the first learnt the plan


async def test_a_timeout_in_the_statement_is_answered_after_the_usual_check(
    billing: GraphQLClient,
    admin_engine: AsyncEngine,
    app: Starlette,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found in review: a one-statement read that timed out was answered TIMEOUT without
    any check of the session having finished: a revoked session got a GraphQL answer
    instead of 401."""
    await _admin(
        admin_engine,
        "UPDATE phigate.sessions SET revoked_at = now() WHERE id = :id",
        id=uuid.UUID(_claims(billing)["sid"]),
    )

    async def too_slow(self: RequestDatabase, sql: str, *args: object) -> list[object]:
        await asyncio.sleep(5)
        return []

    monkeypatch.setattr(RequestDatabase, "fetch_alone", too_slow)
    monkeypatch.setattr(endpoint(app).view, "timeout", 0.2)
    refused = await billing(PAGE, headers={"X-Request-ID": "checked-timeout"})
    assert refused.status == 401


async def test_entries_the_audit_store_refuses_let_nothing_read_leave(
    billing: GraphQLClient, admin_engine: AsyncEngine
) -> None:
    """The audit store refuses this request's entries (a constraint added for the test):
    the one-statement read fails as a whole, the usual path answers, its entries are
    refused too, and the answer carries no data, only AUDIT_UNAVAILABLE."""
    await _admin(
        admin_engine,
        "ALTER TABLE audit.events ADD CONSTRAINT ck_test_refused"
        " CHECK (request_id IS DISTINCT FROM 'checked-refused')",
    )
    try:
        refused = await billing(PAGE, headers={"X-Request-ID": "checked-refused"})
        assert refused.data is None and refused.codes == ["AUDIT_UNAVAILABLE"]
        assert "Synthetic" not in refused.raw and "edges" not in refused.raw
    finally:
        await _admin(admin_engine, "ALTER TABLE audit.events DROP CONSTRAINT ck_test_refused")
    assert await _reads(admin_engine, "checked-refused") == []
    answered = await billing(PAGE, headers={"X-Request-ID": "checked-after-refusal"})
    assert len(answered.ok()["patients"]["edges"]) == 3
    assert len(await _reads(admin_engine, "checked-after-refusal")) == 2


async def test_a_request_that_reads_nothing_is_one_statement_that_checks_the_session(
    billing: GraphQLClient, statements: StatementCounter
) -> None:
    """`{ __typename }` reads nothing: its request is the session check alone, as one
    statement (not BEGIN, the check and COMMIT), and nothing is audited."""
    for _ in range(2):  # the plan learnt
        assert (await billing("{ __typename }")).ok() == {"__typename": "Query"}
    before, checked = len(statements.statements), PLANS.checked
    answer = await billing("{ __typename }")
    sent = statements.statements[before:]
    assert answer.ok() == {"__typename": "Query"}
    assert PLANS.checked == checked + 1
    assert len(sent) == 1 and "phigate.begin_request" in sent[0], sent


async def test_a_request_that_reads_nothing_is_refused_once_its_session_ended(
    billing: GraphQLClient, admin_engine: AsyncEngine
) -> None:
    for _ in range(2):
        (await billing("{ __typename }")).ok()
    checked = PLANS.checked
    (await billing("{ __typename }")).ok()
    assert PLANS.checked == checked + 1  # it is the one-statement check that refuses below
    await _admin(
        admin_engine,
        "UPDATE phigate.sessions SET revoked_at = now() WHERE id = :id",
        id=uuid.UUID(_claims(billing)["sid"]),
    )
    refused = await billing("{ __typename }")
    assert refused.status == 401
    assert "Query" not in refused.raw


async def test_a_failed_read_is_reported_and_recorded_as_the_full_path_does(
    billing: GraphQLClient, admin_engine: AsyncEngine
) -> None:
    """Found in review: when the statement that reads and writes its own audit entries
    failed in its read (not the audit store), the planned path answered
    AUDIT_UNAVAILABLE and recorded nothing; the full path reports the failure as an
    internal error and records the attempt (ERROR entries). The planned path now hands
    such a request to the full path."""
    never_learnt = "{ patients(first: 3) { edges { node { id familyName givenName } } } }"
    await _admin(admin_engine, "REVOKE SELECT ON phigate.patients FROM phigate_app")
    try:
        planned = await billing(PAGE, headers={"X-Request-ID": "checked-read-failed"})
        full = await billing(never_learnt, headers={"X-Request-ID": "checked-read-failed-full"})
    finally:
        await _admin(admin_engine, "GRANT SELECT ON phigate.patients TO phigate_app")
    assert planned.data is None and full.data is None
    assert planned.codes == full.codes == ["INTERNAL_ERROR"]

    def outcomes(found: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
        return sorted((e["action"], e["outcome"], e["field_path"]) for e in found)

    recorded = outcomes(await entries(admin_engine, request_id="checked-read-failed"))
    full_path = outcomes(await entries(admin_engine, request_id="checked-read-failed-full"))
    assert recorded and recorded == full_path
    assert {outcome for _, outcome, _ in recorded} == {"ERROR"}
