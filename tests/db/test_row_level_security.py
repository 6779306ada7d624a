"""Row-level security, tested the hard way: raw SQL as the application role, with no
help from the gateway's own filters."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from db.engine import DatabaseTarget
from db.sessions import new_secret


async def connect(target: DatabaseTarget) -> asyncpg.Connection:
    query = target.url.query
    return await asyncpg.connect(
        host=str(query["host"]),
        port=int(str(query["port"])),
        user=target.url.username,
        database=target.url.database,
    )


@pytest.fixture
async def world(admin_target: DatabaseTarget) -> dict[str, uuid.UUID]:
    """Two clinicians, each with one patient (and a diagnosis) on their care team."""
    ids = {name: uuid.uuid4() for name in ("alice", "bob", "alices_patient", "bobs_patient")}
    admin = await connect(admin_target)
    try:
        for user in ("alice", "bob"):
            await admin.execute(
                "INSERT INTO phigate.users (id, username, role, password_hash, totp_secret_ciphertext) VALUES ($1, $2, 'CLINICIAN', 'x', '\\x00')",
                ids[user], f"rls.{user}",
            )  # fmt: skip
        for patient, owner in (("alices_patient", "alice"), ("bobs_patient", "bob")):
            await admin.execute(
                "INSERT INTO phigate.patients (id, mrn, given_name, family_name, date_of_birth) VALUES ($1, $2, 'Alpha', 'Synthetic-RLS', '1990-01-01')",
                ids[patient], f"DEMO-RLS-{patient[:3].upper()}",
            )  # fmt: skip
            await admin.execute(
                "INSERT INTO phigate.diagnoses (patient_id, icd10_code) VALUES ($1, 'I10')",
                ids[patient],
            )
            await admin.execute(
                "INSERT INTO phigate.care_team_members (patient_id, user_id) VALUES ($1, $2)",
                ids[patient],
                ids[owner],
            )
    finally:
        await admin.close()
    return ids


async def open_session(admin_target: DatabaseTarget, user: uuid.UUID) -> tuple[uuid.UUID, str]:
    """A live session of a user, as login creates it: its id and its secret."""
    secret, digest = new_secret()
    admin = await connect(admin_target)
    try:
        session_id = await admin.fetchval(
            "INSERT INTO phigate.sessions (user_id, secret_hash, expires_at)"
            " VALUES ($1, $2, now() + interval '1 hour') RETURNING id",
            user,
            digest,
        )
    finally:
        await admin.close()
    return session_id, secret


async def as_app(
    app_target: DatabaseTarget,
    admin_target: DatabaseTarget,
    scope: str | None,
    actor: uuid.UUID | None,
) -> asyncpg.Connection:
    """The application role in a transaction whose row context the database set from a
    live session of ``actor`` (``scope`` is what the database gives that user's role)."""
    connection = await connect(app_target)
    await connection.execute("BEGIN")
    if actor is not None:
        session_id, secret = await open_session(admin_target, actor)
        if scope is not None:
            await set_ceiling(admin_target, scope)
        row = await connection.fetchrow(BEGIN_REQUEST, session_id, secret)
        assert row is not None and row["row_scope"] == (scope or "CARE_TEAM")
    return connection


async def in_savepoint(connection: asyncpg.Connection, statement: str, *args: object) -> None:
    """Run a statement expected to fail without aborting the test's transaction."""
    await connection.execute("SAVEPOINT attempt")
    try:
        await connection.execute(statement, *args)
    finally:
        await connection.execute("ROLLBACK TO SAVEPOINT attempt")


BEGIN_REQUEST = "SELECT * FROM phigate.begin_request($1, $2, '{}', 900, 15)"


async def set_ceiling(admin_target: DatabaseTarget, scope: str) -> None:
    admin = await connect(admin_target)
    try:
        await admin.execute(
            "UPDATE phigate.row_scope_ceilings SET row_scope = $1 WHERE grantee = 'role:CLINICIAN'",
            scope,
        )
    finally:
        await admin.close()


@pytest.mark.parametrize(
    ("scope", "who", "visible"),
    [
        (None, None, set()),  # no session: nothing visible
        ("NONE", "alice", set()),
        ("CARE_TEAM", "alice", {"alices_patient"}),
        ("CARE_TEAM", "bob", {"bobs_patient"}),
        ("ALL", "alice", {"alices_patient", "bobs_patient"}),
    ],
)
async def test_reads_are_limited_to_the_scope_the_database_set(
    app_target: DatabaseTarget,
    admin_target: DatabaseTarget,
    world: dict[str, uuid.UUID],
    scope: str | None,
    who: str | None,
    visible: set[str],
) -> None:
    connection = await as_app(app_target, admin_target, scope, world[who] if who else None)
    try:
        names = {
            name
            for name, value in world.items()
            if value in {r["id"] for r in await connection.fetch("SELECT id FROM phigate.patients")}
        }
        assert names == visible
        diagnosed = {
            r["patient_id"]
            for r in await connection.fetch("SELECT patient_id FROM phigate.diagnoses")
        }
        assert diagnosed == {world[name] for name in visible}
    finally:
        await connection.close()


async def test_writes_across_care_teams_are_refused(
    app_target: DatabaseTarget, admin_target: DatabaseTarget, world: dict[str, uuid.UUID]
) -> None:
    connection = await as_app(app_target, admin_target, "CARE_TEAM", world["alice"])
    try:
        assert (
            await connection.execute(
                "UPDATE phigate.patients SET given_name = 'Changed' WHERE id = $1",
                world["bobs_patient"],
            )
            == "UPDATE 0"
        )
        assert (
            await connection.execute(
                "DELETE FROM phigate.patients WHERE id = $1", world["bobs_patient"]
            )
            == "DELETE 0"
        )
        assert (
            await connection.execute(
                "DELETE FROM phigate.diagnoses WHERE patient_id = $1", world["bobs_patient"]
            )
            == "DELETE 0"
        )
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await in_savepoint(
                connection,
                "INSERT INTO phigate.diagnoses (patient_id, icd10_code) VALUES ($1, 'E11.9')",
                world["bobs_patient"],
            )
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await in_savepoint(
                connection,
                "UPDATE phigate.diagnoses SET patient_id = $1 WHERE patient_id = $2",
                world["bobs_patient"],
                world["alices_patient"],
            )
        assert (
            await connection.execute(
                "UPDATE phigate.patients SET given_name = 'Changed' WHERE id = $1",
                world["alices_patient"],
            )
            == "UPDATE 1"
        )
    finally:
        await connection.close()


async def test_the_application_role_cannot_switch_row_security_off(
    app_target: DatabaseTarget, admin_target: DatabaseTarget, world: dict[str, uuid.UUID]
) -> None:
    connection = await connect(app_target)
    try:
        for statement in (
            "ALTER TABLE phigate.patients DISABLE ROW LEVEL SECURITY",
            "DROP POLICY patients_read ON phigate.patients",
            "SET row_security = off",  # with policies in force, off makes queries fail rather than bypass
        ):
            try:
                await connection.execute(statement)
            except (asyncpg.InsufficientPrivilegeError, asyncpg.UndefinedObjectError):
                continue
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await connection.fetch("SELECT id FROM phigate.patients")
    finally:
        await connection.close()


async def test_break_glass_episode_opens_exactly_one_patient_until_it_expires(
    app_target: DatabaseTarget, admin_target: DatabaseTarget, world: dict[str, uuid.UUID]
) -> None:
    admin = await connect(admin_target)
    try:
        await admin.execute(
            "INSERT INTO phigate.break_glass_episodes (user_id, patient_id, reason, expires_at) VALUES ($1, $2, 'synthetic emergency', now() + interval '1 hour')",
            world["alice"], world["bobs_patient"],
        )  # fmt: skip
        connection = await as_app(app_target, admin_target, "CARE_TEAM", world["alice"])
        try:
            assert len(await connection.fetch("SELECT id FROM phigate.patients")) == 2
            await admin.execute(
                "UPDATE phigate.break_glass_episodes SET expires_at = now() - interval '1 second'"
            )
            assert [r["id"] for r in await connection.fetch("SELECT id FROM phigate.patients")] == [
                world["alices_patient"]
            ]
        finally:
            await connection.close()
    finally:
        await admin.close()


@pytest.mark.parametrize(
    "forged",
    [
        # What the gateway set before: the application role naming its own actor and scope.
        ["SELECT set_config('phigate.row_scope', 'ALL', false)",
         "SELECT set_config('phigate.actor_id', '{alice}', false)"],
        # The new setting, written by hand in each shape it could take.
        ["SELECT set_config('phigate.row_context', 'ALL|' || repeat('0', 64) || '|{alice}', true)"],
        ["SELECT set_config('phigate.row_context', 'CARE_TEAM|' || repeat('a', 64) || '|{alice}', true)"],
        ["SELECT set_config('phigate.row_context', 'ALL', true)"],
        # The MAC function itself is the owner's: the application role may not call it.
        ["SELECT set_config('phigate.row_context', 'ALL|'"
         " || phigate.row_context_mac('ALL', '{alice}') || '|{alice}', true)"],
    ],
)  # fmt: skip
async def test_the_application_role_cannot_set_a_row_context_itself(
    app_target: DatabaseTarget, world: dict[str, uuid.UUID], forged: list[str]
) -> None:
    """Holding phigate_app's connection (a stolen DATABASE_URL, an injection) without a
    live session's secret reaches no patient row, whatever it claims."""
    connection = await connect(app_target)
    try:
        await connection.execute("BEGIN")
        for statement in forged:
            try:
                await connection.execute(statement.format(alice=world["alice"]))
            except asyncpg.InsufficientPrivilegeError:
                await connection.execute("ROLLBACK")
                await connection.execute("BEGIN")
        assert await connection.fetch("SELECT id FROM phigate.patients") == []
        assert await connection.fetch("SELECT patient_id FROM phigate.diagnoses") == []
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await connection.execute(
                "INSERT INTO phigate.patients (mrn, given_name, family_name, date_of_birth)"
                " VALUES ('DEMO-RLS-X', 'Alpha', 'Synthetic-RLS', '1990-01-01')"
            )
    finally:
        await connection.close()


async def test_a_context_does_not_outlive_its_transaction(
    app_target: DatabaseTarget, admin_target: DatabaseTarget, world: dict[str, uuid.UUID]
) -> None:
    """A valid context copied into a later transaction (same connection) verifies no more:
    it is bound to its backend and its transaction."""
    connection = await as_app(app_target, admin_target, "CARE_TEAM", world["alice"])
    try:
        value = await connection.fetchval("SELECT current_setting('phigate.row_context')")
        assert len(await connection.fetch("SELECT id FROM phigate.patients")) == 1
        await connection.execute("COMMIT")
        await connection.execute("BEGIN")
        await connection.execute("SELECT set_config('phigate.row_context', $1, true)", value)
        assert await connection.fetch("SELECT id FROM phigate.patients") == []
    finally:
        await connection.close()


@pytest.mark.parametrize("problem", ["wrong secret", "revoked", "expired", "idle", "disabled"])
async def test_no_context_for_a_session_that_is_not_live(
    app_target: DatabaseTarget,
    admin_target: DatabaseTarget,
    world: dict[str, uuid.UUID],
    problem: str,
) -> None:
    session_id, secret = await open_session(admin_target, world["alice"])
    admin = await connect(admin_target)
    try:
        change = {
            "revoked": "UPDATE phigate.sessions SET revoked_at = now() WHERE id = $1",
            "expired": "UPDATE phigate.sessions SET expires_at = now() WHERE id = $1",
            "idle": "UPDATE phigate.sessions SET last_seen_at = now() - interval '1 hour' WHERE id = $1",
            "disabled": "UPDATE phigate.users SET status = 'DISABLED' WHERE id ="
            " (SELECT user_id FROM phigate.sessions WHERE id = $1)",
        }.get(problem)
        if change:
            await admin.execute(change, session_id)
    finally:
        await admin.close()
    connection = await connect(app_target)
    try:
        await connection.execute("BEGIN")
        presented = "not-the-secret" if problem == "wrong secret" else secret
        assert await connection.fetchrow(BEGIN_REQUEST, session_id, presented) is None
        assert await connection.fetch("SELECT id FROM phigate.patients") == []
    finally:
        await connection.close()
