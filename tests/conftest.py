"""Test fixtures: one real PostgreSQL (embedded) per session, one migrated template
database, and a fresh copy of it for every test that asks for a database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from functools import partial

import httpx
import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from db.crypto import BlindIndex, Envelope, FieldCipher, LocalKeyProvider, generate_key
from db.embedded import EmbeddedPostgres, start_embedded
from db.engine import DatabaseTarget, create_engine
from db.migrate import upgrade
from db.rate_limits import PostgresStorage
from db.unit_of_work import RequestDatabase
from domain.purposes import Purpose
from domain.roles import Role
from graph.http.app import create_app, engine_of, identity_of
from graph.logs import configure_logging
from graph.settings import Settings
from tests.graphql_client import GraphQLClient
from tests.identity import create_user as create_identity_user
from tests.identity import issue_token, service_token

TEMPLATE = "phigate_template"


@pytest.fixture(scope="session", autouse=True)
def production_logging() -> None:
    """Tests log through the production pipeline (JSON, key allowlist)."""
    configure_logging("INFO", "json")


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedPostgres:
    server = start_embedded(tmp_path_factory.mktemp("postgres") / "data", for_tests=True)
    server.drop_database(TEMPLATE)
    server.ensure_database(TEMPLATE)
    upgrade(server.admin_target(TEMPLATE))
    return server


@pytest.fixture
def database(postgres: EmbeddedPostgres) -> Iterator[str]:
    """The name of a fresh, migrated database that only this test uses."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    postgres.ensure_database(name, template=TEMPLATE)
    yield name
    postgres.drop_database(name)


@pytest.fixture
def app_target(postgres: EmbeddedPostgres, database: str) -> DatabaseTarget:
    return postgres.app_target(database)


@pytest.fixture
def admin_target(postgres: EmbeddedPostgres, database: str) -> DatabaseTarget:
    return postgres.admin_target(database)


MASTER_KEY = generate_key()
BLIND_INDEX_KEY = generate_key()
TEST_KEYS = {"master_key": MASTER_KEY, "blind_index_key": BLIND_INDEX_KEY}


def cipher_for_tests() -> FieldCipher:
    return FieldCipher(
        Envelope(LocalKeyProvider.from_base64(MASTER_KEY)), BlindIndex.from_base64(BLIND_INDEX_KEY)
    )


# argon2id at its minimum cost: these tests are about what phigate does, not about how
# slow a hash is (the CLI and end-to-end tests run with the real defaults).
FAST_HASHING = {"argon2_time_cost": 1, "argon2_memory_kib": 8192}


@pytest.fixture
def settings() -> Settings:
    return Settings(**TEST_KEYS, **FAST_HASHING)


@pytest.fixture
async def app(settings: Settings, app_target: DatabaseTarget) -> AsyncIterator[Starlette]:
    application = create_app(settings, target=app_target)
    yield application
    await engine_of(application).dispose()


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    # localhost: authlib (rightly) refuses OAuth over plain HTTP anywhere else.
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        yield http


@pytest.fixture
def token_for(app: Starlette) -> Callable[..., Awaitable[str]]:
    """An access token for a fresh user of the given role, with a live session: for
    tests about what callers can do, not about how they log in."""
    return partial(issue_token, identity_of(app))


AsRole = Callable[..., Awaitable[GraphQLClient]]


@pytest.fixture
def as_role(client: httpx.AsyncClient, token_for: Callable[..., Awaitable[str]]) -> AsRole:
    """A GraphQL client for a fresh user of a role, declaring a purpose of use."""

    async def make(
        role: Role, purpose: Purpose | None = None, *, reason: str | None = None
    ) -> GraphQLClient:
        headers = {"Authorization": f"Bearer {await token_for(role)}"}
        if purpose is not None:
            headers["X-Purpose-Of-Use"] = purpose.value
        if reason is not None:
            headers["X-Break-Glass-Reason"] = reason
        return GraphQLClient(client, headers=headers)

    return make


@pytest.fixture
async def gql(as_role: AsRole) -> GraphQLClient:
    """A compliance officer acting for COMPLIANCE: BAAs, breaches, who was affected."""
    return await as_role(Role.COMPLIANCE_OFFICER, Purpose.COMPLIANCE)


@pytest.fixture
async def clinician(as_role: AsRole) -> GraphQLClient:
    """A clinician acting for TREATMENT: sees the patients on their care team, which
    includes every patient they register."""
    return await as_role(Role.CLINICIAN, Purpose.TREATMENT)


@pytest.fixture
async def service(
    client: httpx.AsyncClient, app: Starlette
) -> Callable[..., Awaitable[GraphQLClient]]:
    """A GraphQL client for an OAuth2 service holding the given scopes."""

    async def make(*scopes: str, purpose: Purpose | None = None) -> GraphQLClient:
        headers = {"Authorization": f"Bearer {await service_token(identity_of(app), scopes)}"}
        if purpose is not None:
            headers["X-Purpose-Of-Use"] = purpose.value
        return GraphQLClient(client, headers=headers)

    return make


@pytest.fixture
async def app_engine(app_target: DatabaseTarget) -> AsyncIterator[AsyncEngine]:
    """A separate engine, as the application role, for arranging and checking rows."""
    engine = create_engine(app_target, pool_size=2, max_overflow=0)
    yield engine
    await engine.dispose()


@pytest.fixture
async def admin_engine(admin_target: DatabaseTarget) -> AsyncIterator[AsyncEngine]:
    """The owner connection, for arranging what the application role may not (times)."""
    engine = create_engine(admin_target, pool_size=1, max_overflow=0)
    yield engine
    await engine.dispose()


@pytest.fixture
async def seeded(admin_engine: AsyncEngine) -> int:
    """Synthetic demo data, seeded as the schema owner (as `phigate seed-demo` does)."""
    from db.demo import seed_demo

    async with admin_engine.begin() as connection:
        report = await seed_demo(
            connection, cipher=cipher_for_tests(), patients=30, now=datetime.now(UTC)
        )
    return report.patients


class StatementCounter:
    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, _conn: object, _cursor: object, statement: str, *_: object) -> None:
        self.statements.append(statement)

    @property
    def count(self) -> int:
        return len(self.statements)


@pytest.fixture
def statements(app: Starlette, monkeypatch: pytest.MonkeyPatch) -> Iterator[StatementCounter]:
    """Counts every SQL statement the application's engine sends, COPYs included."""
    counter = StatementCounter()
    sync_engine = engine_of(app).sync_engine
    event.listen(sync_engine, "before_cursor_execute", counter)
    original_copy, original_fetch = RequestDatabase.copy, RequestDatabase.fetch

    async def counted_copy(
        self: RequestDatabase, schema: str, table: str, *args: object, **kwargs: object
    ) -> None:
        counter.statements.append(f"COPY {schema}.{table}")
        await original_copy(self, schema, table, *args, **kwargs)

    async def counted_fetch(self: RequestDatabase, sql: str, *args: object) -> list[object]:
        counter.statements.append(sql)  # planned reads go straight to asyncpg
        return await original_fetch(self, sql, *args)

    original_alone = RequestDatabase.fetch_alone

    async def counted_alone(self: RequestDatabase, sql: str, *args: object) -> list[object]:
        counter.statements.append(sql)  # a planned read that checks the session itself
        return await original_alone(self, sql, *args)

    original_incr = PostgresStorage.incr

    async def counted_incr(self: PostgresStorage, key: str, *args: object) -> int:
        counter.statements.append("rate-limit increment")  # straight to asyncpg too
        return await original_incr(self, key, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(PostgresStorage, "incr", counted_incr)
    monkeypatch.setattr(RequestDatabase, "copy", counted_copy)
    monkeypatch.setattr(RequestDatabase, "fetch", counted_fetch)
    monkeypatch.setattr(RequestDatabase, "fetch_alone", counted_alone)
    yield counter
    event.remove(sync_engine, "before_cursor_execute", counter)


async def count_rows(engine: AsyncEngine, table: str) -> int:
    """Every row, whatever row-level security would show a caller: with the owner's
    engine (admin_engine); the application role sees no patient rows on its own."""
    async with engine.begin() as connection:
        bound = await connection.scalar(text("SELECT row_security_active('phigate.patients')"))
        assert not bound, "count_rows needs the owner's engine (admin_engine)"
        return int(
            (await connection.execute(text(f"SELECT count(*) FROM phigate.{table}"))).scalar_one()
        )


@pytest.fixture
async def user(app: Starlette) -> dict:
    user_id, secret = await create_identity_user(
        identity_of(app), Role.CLINICIAN, username="test.clinician"
    )
    return {"id": user_id, "username": "test.clinician", "secret": secret}


# pytest-xdist's schedulers that group tests by module, file or group key them by node id;
# schemathesis gives all its tests one node id, so they would keep one and drop the rest.
GROUPING_SCHEDULERS = frozenset({"loadscope", "loadfile", "loadgroup"})


def pytest_configure(config: pytest.Config) -> None:
    dist = getattr(config.option, "dist", "no")
    if dist in GROUPING_SCHEDULERS:
        raise pytest.UsageError(
            f"--dist {dist} would silently drop all but one of the schemathesis tests "
            "(they share a node id); use the default scheduler (-n 2)"
        )


# The summary lines ride on each test's report, so that they reach the end of the output
# from whichever process ran the test (pytest-xdist runs the suite in two).
SUMMARY_KEY = "phigate-summary"
REPORTED: list[str] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    report = yield
    from tests.e2e.served import SUMMARY

    report.user_properties.extend((SUMMARY_KEY, line) for line in SUMMARY)
    SUMMARY.clear()
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    REPORTED.extend(value for key, value in report.user_properties if key == SUMMARY_KEY)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """What the fuzzers and property tests generated and what came back."""
    for line in REPORTED:
        terminalreporter.write_line(line)
