"""The pre-deployment checklist's validations, one test per item, named after it
(C1 to C18 Critical, I1 to I12 Important, in the checklist's order). Each performs the
item's own "Validate" step against phigate as it runs. `phigate compliance evidence`
runs the deployment-level ones against a configured deployment."""

from __future__ import annotations

import json
import uuid

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.purposes import Purpose
from domain.roles import Role
from tests.conftest import AsRole
from tests.db.test_row_level_security import world  # noqa: F401 (a fixture)
from tests.e2e.test_cli import external_database  # noqa: F401 (a fixture)
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


# C17: row-level security on every PHI table, exercised in raw SQL as the application
# role (tests/db/test_row_level_security.py does patients and diagnoses in depth).


async def test_C17_every_phi_table_is_under_row_level_security(app_engine: AsyncEngine) -> None:
    from db.models import PHI_TABLES

    async with app_engine.connect() as connection:
        rows = (
            await connection.execute(
                text(
                    "SELECT c.relname, c.relrowsecurity, pg_get_userbyid(c.relowner),"
                    " (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid)"
                    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE n.nspname = 'phigate' AND c.relkind IN ('r', 'p')"
                )
            )
        ).all()
        app_role = (
            await connection.execute(
                text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
            )
        ).one()
    tables = {name: (secured, owner, policies) for name, secured, owner, policies in rows}
    for table in PHI_TABLES:
        secured, owner, policies = tables[table]
        assert secured and policies >= 1, f"{table}: row-level security off or no policy"
        # The application role does not own it (an owner is exempt unless FORCEd) ...
        assert owner == "phigate_owner", f"{table} is owned by {owner}"
    # ... and cannot bypass it.
    assert tuple(app_role) == (False, False)


@pytest.fixture
async def patient_facts(
    admin_target,
    world: dict[str, uuid.UUID],  # noqa: F811 (the fixture imported above)
) -> dict[str, uuid.UUID]:
    """A consent, a legal-hold event and a breach listing for each patient of the world."""
    from tests.db.test_row_level_security import connect

    admin = await connect(admin_target)
    try:
        breach = await admin.fetchval(
            "INSERT INTO phigate.breach_incidents (title, discovered_at, status, affected_count,"
            " phi_categories, remediation_actions)"
            " VALUES ('Synthetic RLS breach', now(), 'REPORTED', 2, '{IDENTITY}', '{}')"
            " RETURNING id"
        )
        for patient in ("alices_patient", "bobs_patient"):
            await admin.execute(
                "INSERT INTO phigate.consents (patient_id, consent_type, status, effective_date)"
                " VALUES ($1, 'RESEARCH', 'GRANTED', '2026-01-01')",
                world[patient],
            )
            await admin.execute(
                "INSERT INTO phigate.legal_hold_events (id, patient_id, action, reason)"
                " VALUES (gen_random_uuid(), $1, 'SET', 'Synthetic litigation hold for the RLS test')",
                world[patient],
            )
            await admin.execute(
                "INSERT INTO phigate.breach_affected_patients (breach_id, patient_id)"
                " VALUES ($1, $2)",
                breach,
                world[patient],
            )
    finally:
        await admin.close()
    return world


@pytest.mark.parametrize(
    ("scope", "who", "visible"),
    [
        (None, None, set()),
        ("NONE", "alice", set()),
        ("CARE_TEAM", "alice", {"alices_patient"}),
        ("ALL", "bob", {"alices_patient", "bobs_patient"}),
    ],
)
@pytest.mark.parametrize("table", ["consents", "breach_affected_patients", "legal_hold_events"])
async def test_C17_patient_facts_are_limited_to_the_row_scope_in_raw_sql(
    app_target,
    admin_target,
    patient_facts: dict[str, uuid.UUID],
    table: str,
    scope: str | None,
    who: str | None,
    visible: set[str],
) -> None:
    from tests.db.test_row_level_security import as_app, in_savepoint

    ids = patient_facts
    connection = await as_app(app_target, admin_target, scope, ids[who] if who else None)
    try:
        statement = f"SELECT patient_id FROM phigate.{table}"
        seen = {r["patient_id"] for r in await connection.fetch(statement)}
        assert seen == {ids[name] for name in visible}
        # Nor can the role write a fact about a patient outside its rows.
        if "bobs_patient" not in visible and table == "consents":
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await in_savepoint(
                    connection,
                    "INSERT INTO phigate.consents (patient_id, consent_type, status,"
                    " effective_date) VALUES ($1, 'MARKETING', 'GRANTED', '2026-01-01')",
                    ids["bobs_patient"],
                )
    finally:
        await connection.close()


# I12: the database roles the migrations create, from the catalog.


async def test_I12_database_roles_have_exactly_the_intended_attributes(
    app_engine: AsyncEngine,
) -> None:
    async with app_engine.connect() as connection:
        roles = {
            name: rest
            for name, *rest in (
                await connection.execute(
                    text(
                        "SELECT rolname, rolcanlogin, rolsuper, rolbypassrls, rolcreaterole,"
                        " rolcreatedb, rolreplication, rolinherit FROM pg_roles"
                        " WHERE rolname IN ('phigate_owner', 'phigate_audit_owner', 'phigate_app')"
                    )
                )
            ).all()
        }
    # Owners never log in; nobody is a superuser, bypasses RLS, or makes roles or databases.
    assert roles["phigate_owner"][:6] == [False, False, False, False, False, False]
    assert roles["phigate_audit_owner"][:6] == [False, False, False, False, False, False]
    assert roles["phigate_app"][:6] == [True, False, False, False, False, False]


@pytest.mark.parametrize(
    ("check", "expected"),
    [
        # The gateway's role is neither owner, nor a member of one.
        ("pg_has_role('phigate_owner', 'MEMBER')", False),
        ("pg_has_role('phigate_audit_owner', 'MEMBER')", False),
        # It cannot change either schema.
        ("has_schema_privilege('phigate', 'CREATE')", False),
        ("has_schema_privilege('audit', 'CREATE')", False),
        # The audit trail: add and read, never change.
        # (insert only the columns a writer sets: txid is the database's)
        ("has_any_column_privilege('audit.events', 'INSERT')", True),
        ("has_column_privilege('audit.events', 'txid', 'INSERT')", False),
        ("has_table_privilege('audit.events', 'SELECT')", True),
        ("has_table_privilege('audit.events', 'UPDATE')", False),
        ("has_table_privilege('audit.events', 'DELETE')", False),
        ("has_table_privilege('audit.events', 'TRUNCATE')", False),
        ("has_table_privilege('audit.chain', 'UPDATE')", False),
        ("has_table_privilege('audit.chain', 'DELETE')", False),
        # Histories are append-only for it.
        ("has_table_privilege('phigate.baa_changes', 'UPDATE')", False),
        ("has_table_privilege('phigate.baa_changes', 'DELETE')", False),
        ("has_table_privilege('phigate.care_team_changes', 'DELETE')", False),
        # The row context's key and ceilings are the owner's alone.
        ("has_table_privilege('phigate.row_context_key', 'SELECT')", False),
        ("has_table_privilege('phigate.row_scope_ceilings', 'UPDATE')", False),
        ("has_table_privilege('phigate.row_scope_ceilings', 'INSERT')", False),
        # Users are disabled, never deleted.
        ("has_table_privilege('phigate.users', 'DELETE')", False),
    ],
)
async def test_I12_the_application_role_has_exactly_its_grants(
    app_engine: AsyncEngine, check: str, expected: bool
) -> None:
    async with app_engine.connect() as connection:
        assert await connection.scalar(text(f"SELECT {check}")) is expected


async def test_I12_the_application_role_owns_nothing(app_engine: AsyncEngine) -> None:
    async with app_engine.connect() as connection:
        owned = (
            await connection.execute(
                text(
                    "SELECT n.nspname || '.' || c.relname FROM pg_class c"
                    " JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE c.relowner = 'phigate_app'::regrole"
                    " UNION ALL SELECT nspname FROM pg_namespace"
                    " WHERE nspowner = 'phigate_app'::regrole"
                    " UNION ALL SELECT proname FROM pg_proc WHERE proowner = 'phigate_app'::regrole"
                )
            )
        ).scalars()
        assert list(owned) == []


# I7: PHI in dedicated tables, and only there.

# Where each schema type with PHI-classified fields is stored. A new type with PHI fails
# the test below until it is placed here, and its table is in db.models.PHI_TABLES.
PHI_TYPE_TABLES = {"Patient": "patients", "Address": "patients", "Diagnosis": "diagnoses"}
GENERIC_COLUMNS = {"id", "recorded_at"}  # names every table may use for its own metadata


def _phi_fields() -> dict[str, list[str]]:
    from domain.data_classes import PhiCategory
    from graph.classification import classify
    from graph.schema import schema

    categories = {category.value for category in PhiCategory}
    fields: dict[str, list[str]] = {}
    for (type_name, field), classification in classify(schema._schema).fields.items():
        if classification.data_class in categories:
            fields.setdefault(type_name, []).append(field)
    return fields


def _snake(name: str) -> str:
    import re

    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


async def _columns(connection) -> dict[str, set[str]]:
    rows = await connection.execute(
        text(
            "SELECT table_schema || '.' || table_name, column_name FROM information_schema.columns"
            " WHERE table_schema IN ('phigate', 'audit')"
        )
    )
    tables: dict[str, set[str]] = {}
    for table, column in rows:
        tables.setdefault(table, set()).add(column)
    return tables


async def test_I7_phi_lives_only_in_the_tables_the_classification_names(
    app_engine: AsyncEngine,
) -> None:
    from db.models import PHI_TABLES

    fields = _phi_fields()
    assert set(fields) == set(PHI_TYPE_TABLES), "a type with PHI fields has no declared table"
    assert set(PHI_TYPE_TABLES.values()) <= set(PHI_TABLES)
    async with app_engine.connect() as connection:
        tables = await _columns(connection)
    phi_columns: set[str] = set()
    for type_name, names in fields.items():
        columns = tables[f"phigate.{PHI_TYPE_TABLES[type_name]}"]
        for field in names:
            if field in {"address", "diagnoses"}:
                continue  # objects, classified through their own fields
            stem = _snake(field)
            candidates = {stem, f"{stem}_sealed", f"{stem}_index", f"address_{stem}"}
            backing = candidates & columns
            assert backing, f"{type_name}.{field}: no column in {PHI_TYPE_TABLES[type_name]}"
            phi_columns |= backing
    phi_columns -= GENERIC_COLUMNS
    leaks = {
        table: sorted(columns & phi_columns)
        for table, columns in tables.items()
        if table.removeprefix("phigate.") not in PHI_TABLES and columns & phi_columns
    }
    assert not leaks, f"PHI columns outside the PHI tables: {leaks}"


async def test_I7_no_phi_value_is_stored_outside_the_phi_tables(
    as_role: AsRole, admin_engine: AsyncEngine, seeded: int
) -> None:
    """The demo's synthetic PHI (seeded, then read and written through the gateway) is
    found in no other table, the audit trail included."""
    from db.demo import synthetic_patient
    from db.models import PHI_TABLES

    clinician = await as_role(Role.CLINICIAN, Purpose.TREATMENT)
    created = await clinician(CREATE_PATIENT, {"input": patient_input()})
    created.ok()
    billing = await as_role(Role.BILLING, Purpose.PAYMENT)
    read = await billing(
        "{ patients(first: 50) { edges { node { mrn givenName familyName ssn insuranceMemberId"
        " } } } }"
    )
    assert len(read.ok()["patients"]["edges"]) >= seeded
    now = __import__("datetime").datetime.now(__import__("datetime").UTC)
    canaries: set[str] = set()
    for number in range(1, seeded + 1):
        patient = synthetic_patient(number, now=now)
        canaries |= {
            patient["family_name"],
            patient["ssn"],
            patient["email"],
            patient["address_line"],
            patient["insurance_member_id"],
        }
    async with admin_engine.connect() as connection:
        tables = await _columns(connection)
        found = []
        for table, columns in sorted(tables.items()):
            if table.removeprefix("phigate.") in PHI_TABLES and table != "phigate.patients":
                continue
            body = " || ' ' || ".join(f"coalesce({column}::text, '')" for column in sorted(columns))
            texts = (await connection.execute(text(f"SELECT {body} FROM {table}"))).scalars()
            for row in texts:
                hits = [canary for canary in canaries if canary in row]
                if hits:
                    found.append(f"{table}: {len(hits)} value(s)")  # never the values
                    break
    # The scan sees PHI where it is (names are stored as they are), and nowhere else.
    assert [entry.split(":")[0] for entry in found] == ["phigate.patients"], found


# I3: key rotation is recorded.


def test_I3_key_rotations_are_recorded_as_security_events(
    external_database: str,  # noqa: F811 (the fixture imported above)
    postgres,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from db.crypto import generate_key
    from graph.cli import main
    from tests.conftest import MASTER_KEY

    assert main(["seed-demo", "--patients", "2"]) == 0
    monkeypatch.setenv("PHIGATE_MASTER_KEY", f"1:{MASTER_KEY},2:{generate_key()}")
    postgres.psql(
        "INSERT INTO phigate.gateway_instances (instance_id, host, pid, kek_versions)"
        " VALUES ('6f1b2c3d-0000-4000-8000-00000000a002', 'gw-2.example.test', 4343, '{1}')",
        database=external_database,
    )
    assert main(["keys", "rotate", "--wait-seconds", "0"]) == 2  # refused: gw-2 lacks v2
    postgres.psql("DELETE FROM phigate.gateway_instances", database=external_database)
    assert main(["keys", "rotate"]) == 0
    capsys.readouterr()
    assert main(["keys", "rotate-signing"]) == 0
    kid = json.loads(capsys.readouterr().out)["signing_kid"]
    events = [
        line.split("|")
        for line in postgres.psql(
            "SELECT action, outcome, reason, actor_kind, actor_id FROM audit.events"
            " WHERE action IN ('DATA_KEYS_REWRAPPED', 'SIGNING_KEY_ROTATED') ORDER BY id",
            database=external_database,
        ).splitlines()
    ]
    assert [(action, outcome, reason) for action, outcome, reason, *_ in events] == [
        ("DATA_KEYS_REWRAPPED", "DENIED", "GATEWAYS_LACK_KEK:2"),
        ("DATA_KEYS_REWRAPPED", "ALLOWED", "KEK:2"),
        ("SIGNING_KEY_ROTATED", "ALLOWED", f"KID:{kid}"[:60]),
    ]
    # Who did it: the operating-system user who ran the command.
    assert all(kind == "SYSTEM" and actor.startswith("cli:") for *_, kind, actor in events)


# C11: data minimization in the queries themselves.

MINIMAL_READS = [
    # (role, purpose, operation, PHI columns it may touch in SQL)
    (Role.BILLING, Purpose.PAYMENT, "{ patients(first: 5) { edges { node { mrn } } } }", {"mrn"}),
    (
        Role.BILLING,
        Purpose.PAYMENT,
        "{ patients(first: 5) { edges { node { familyName insurancePayer } } } }",
        {"family_name", "insurance_payer"},
    ),
    (
        Role.BILLING,
        Purpose.PAYMENT,
        '{ patientsByIdentifier(mrn: "DEMO-000003") { givenName } }',
        {"given_name", "mrn"},  # mrn: the lookup key the caller gave
    ),
    (
        Role.CLINICIAN,
        Purpose.TREATMENT,
        "{ patients(first: 5) { edges { node { diagnoses { icd10Code } } } } }",
        {"icd10_code", "recorded_at"},  # recorded_at: the diagnoses' order
    ),
    (
        Role.COMPLIANCE_OFFICER,
        Purpose.COMPLIANCE,
        "{ breaches { affectedPatients { givenName } } }",
        {"given_name"},
    ),
]


@pytest.mark.parametrize(("role", "purpose", "operation", "allowed"), MINIMAL_READS)
async def test_C11_a_minimal_selection_reads_no_other_phi_column(
    as_role: AsRole, statements, seeded: int, role, purpose, operation: str, allowed: set[str]
) -> None:
    """The SQL sent for a selection names only the PHI columns of the fields selected
    (the others are NULL constants, never read), on the full path and the planned one
    (the same operation three times: learnt, then planned)."""
    import re

    from db.patients import DIAGNOSIS_PHI_COLUMNS, PATIENT_PHI_COLUMNS

    caller = await as_role(role, purpose)
    if role is Role.CLINICIAN:
        # A clinician reaches the patients of their care team: register some.
        for _ in range(3):
            (await caller(CREATE_PATIENT, {"input": patient_input()})).ok()
    phi = PATIENT_PHI_COLUMNS | DIAGNOSIS_PHI_COLUMNS
    for _ in range(3):
        statements.statements.clear()
        answer = (await caller(operation)).ok()
        assert answer
        touched = {
            column
            for statement in statements.statements
            if not statement.startswith("COPY")
            for column in re.findall(r"\b(?:patients|diagnoses)\.(\w+)", statement)
            if column in phi
        }
        assert touched <= allowed, f"read PHI columns not asked for: {sorted(touched - allowed)}"
        assert touched, "the operation read nothing: the test would prove nothing"
