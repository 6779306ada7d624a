from __future__ import annotations

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from db.embedded import EmbeddedPostgres
from db.engine import DatabaseTarget, create_engine
from db.migrate import head_revision, include_object
from db.models import AuditBase, Base


async def _connect(target: DatabaseTarget) -> asyncpg.Connection:
    query = target.url.query
    return await asyncpg.connect(
        host=str(query["host"]),
        port=int(str(query["port"])),
        user=target.url.username,
        database=target.url.database,
    )


async def test_migrated_database_matches_the_models(admin_target: DatabaseTarget) -> None:
    engine = create_engine(admin_target, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as connection:

            def diff(sync_connection):
                context = MigrationContext.configure(
                    sync_connection,
                    opts={
                        "include_schemas": True,
                        "compare_type": True,
                        "include_object": include_object,
                    },
                )
                return compare_metadata(context, [Base.metadata, AuditBase.metadata])

            assert await connection.run_sync(diff) == []
            revision = await connection.run_sync(
                lambda c: MigrationContext.configure(c).get_current_revision()
            )
            assert revision == head_revision()
    finally:
        await engine.dispose()


async def test_tables_belong_to_the_owner_role_not_the_application(
    admin_target: DatabaseTarget,
) -> None:
    connection = await _connect(admin_target)
    try:
        owners = {
            row["tableowner"]
            for row in await connection.fetch(
                "SELECT tableowner FROM pg_tables WHERE schemaname = 'phigate'"
            )
        }
        assert owners == {"phigate_owner"}
        app_role = await connection.fetchrow(
            "SELECT rolsuper, rolcreaterole, rolbypassrls FROM pg_roles WHERE rolname = 'phigate_app'"
        )
        assert app_role is not None and not any(app_role.values())
    finally:
        await connection.close()


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE phigate.intruder (id int)",
        "ALTER TABLE phigate.patients ADD COLUMN deleted_at timestamptz",
        "DROP TABLE phigate.consents",
        "UPDATE phigate.baa_changes SET new_value = 'x'",
        "DELETE FROM phigate.baa_changes",
        "TRUNCATE phigate.patients",
    ],
)
async def test_application_role_cannot_change_schema_or_history(
    app_target: DatabaseTarget, statement: str
) -> None:
    connection = await _connect(app_target)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.execute(statement)
    finally:
        await connection.close()


async def test_application_role_can_read_and_write_rows(app_engine, admin_target) -> None:
    """With a row context the database set from a live session (row scope ALL)."""
    from db.sessions import new_secret

    secret, digest = new_secret()
    admin = await _connect(admin_target)
    try:
        user = await admin.fetchval(
            "INSERT INTO phigate.users (username, role, password_hash, totp_secret_ciphertext)"
            " VALUES ('mig.billing', 'BILLING', 'x', '\\x00') RETURNING id"
        )
        session = await admin.fetchval(
            "INSERT INTO phigate.sessions (user_id, secret_hash, expires_at)"
            " VALUES ($1, $2, now() + interval '1 hour') RETURNING id",
            user,
            digest,
        )
    finally:
        await admin.close()
    async with app_engine.begin() as connection:
        await connection.execute(
            text("SELECT * FROM phigate.begin_request(:s, :k, '{}', 900, 15)"),
            {"s": session, "k": secret},
        )
        await connection.execute(
            text(
                "INSERT INTO phigate.patients (mrn, given_name, family_name, date_of_birth) "
                "VALUES ('DEMO-TEST-1', 'Alpha', 'Synthetic-T', '1990-01-01')"
            )
        )
        assert (
            await connection.execute(text("SELECT count(*) FROM phigate.patients"))
        ).scalar_one() == 1
        await connection.execute(text("DELETE FROM phigate.patients"))


def test_no_soft_delete_columns_anywhere() -> None:
    soft = {"deleted_at", "is_deleted", "deleted", "archived_at"}
    found = [
        f"{table.name}.{column.name}"
        for table in Base.metadata.tables.values()
        for column in table.columns
        if column.name in soft
    ]
    assert found == []


async def test_check_constraints_hold_enums_in_the_database(app_engine) -> None:
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError):
        async with app_engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO phigate.baas (vendor_name, services, phi_categories, status) "
                    "VALUES ('Example', ARRAY['x'], ARRAY['IDENTITY'], 'SIGNED')"
                )
            )


def test_migrations_run_on_a_fresh_database_and_are_repeatable(postgres: EmbeddedPostgres) -> None:
    from db.migrate import upgrade

    name = "t_fresh_migration"
    postgres.drop_database(name)
    postgres.ensure_database(name)
    try:
        upgrade(postgres.admin_target(name))
        upgrade(postgres.admin_target(name))  # a second run is a no-op
        tables = postgres.psql(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'phigate'", database=name
        )
        assert int(tables) == len(Base.metadata.tables)
    finally:
        postgres.drop_database(name)


def test_plaintext_identifiers_are_encrypted_by_the_migration_that_needs_keys(
    postgres: EmbeddedPostgres,
) -> None:
    from db.migrate import upgrade
    from tests.conftest import cipher_for_tests

    name = "t_encrypting_migration"
    postgres.drop_database(name)
    postgres.ensure_database(name)
    try:
        upgrade(postgres.admin_target(name), "0006")
        postgres.psql(
            "INSERT INTO phigate.patients (id, mrn, given_name, family_name, date_of_birth, ssn,"
            " insurance_member_id) VALUES ('00000000-0000-4000-8000-000000000001', 'DEMO-MIG-1',"
            " 'Alpha', 'Synthetic-Mig', '1980-01-01', '900-55-6666', 'XMP-MIG-1')",
            database=name,
        )
        with pytest.raises(RuntimeError, match="PHIGATE_MASTER_KEY"):
            upgrade(postgres.admin_target(name))
        # Nothing half-done: still at 0006, the plaintext still there to encrypt.
        assert postgres.psql("SELECT ssn FROM phigate.patients", database=name) == "900-55-6666"
        cipher = cipher_for_tests()
        upgrade(postgres.admin_target(name), cipher=cipher)
        sealed, index = postgres.psql(
            "SELECT encode(ssn_sealed, 'hex') || ' ' || encode(ssn_index, 'hex')"
            " FROM phigate.patients",
            database=name,
        ).split()
        patient_id = "00000000-0000-4000-8000-000000000001"
        assert cipher.open("patients", "ssn", patient_id, bytes.fromhex(sealed)) == "900-55-6666"
        assert bytes.fromhex(index) == cipher.index("patients.ssn", "900-55-6666")
    finally:
        postgres.drop_database(name)
