"""Row-level security, tested the hard way: raw SQL as the application role, with no
help from the gateway's own filters."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from db.engine import DatabaseTarget


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


async def as_app(
    app_target: DatabaseTarget, scope: str | None, actor: uuid.UUID | None
) -> asyncpg.Connection:
    connection = await connect(app_target)
    if scope is not None:
        await connection.execute("SELECT set_config('phigate.row_scope', $1, false)", scope)
    if actor is not None:
        await connection.execute("SELECT set_config('phigate.actor_id', $1, false)", str(actor))
    return connection


@pytest.mark.parametrize(
    ("scope", "who", "visible"),
    [
        (None, None, set()),  # nothing declared: nothing visible
        ("NONE", "alice", set()),
        ("CARE_TEAM", None, set()),
        ("CARE_TEAM", "alice", {"alices_patient"}),
        ("CARE_TEAM", "bob", {"bobs_patient"}),
        ("ALL", None, {"alices_patient", "bobs_patient"}),
        ("SOMETHING", "alice", set()),
    ],
)
async def test_reads_are_limited_to_the_declared_scope(
    app_target: DatabaseTarget,
    world: dict[str, uuid.UUID],
    scope: str | None,
    who: str | None,
    visible: set[str],
) -> None:
    connection = await as_app(app_target, scope, world[who] if who else None)
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
    app_target: DatabaseTarget, world: dict[str, uuid.UUID]
) -> None:
    connection = await as_app(app_target, "CARE_TEAM", world["alice"])
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
            await connection.execute(
                "INSERT INTO phigate.diagnoses (patient_id, icd10_code) VALUES ($1, 'E11.9')",
                world["bobs_patient"],
            )
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await connection.execute(
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
    app_target: DatabaseTarget, world: dict[str, uuid.UUID]
) -> None:
    connection = await as_app(app_target, None, None)
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
        connection = await as_app(app_target, "CARE_TEAM", world["alice"])
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
