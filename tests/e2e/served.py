"""`phigate serve` on a database of its own, with demo data and a signed-in caller per
role: for the tests that attack the served gateway over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from db.embedded import EmbeddedPostgres
from db.engine import create_engine
from domain.roles import Role
from graph.settings import Settings
from tests.conftest import FAST_HASHING, TEMPLATE, TEST_KEYS, cipher_for_tests
from tests.e2e.test_serve import free_port, gateway_env, start_gateway, wait_ready

CALLERS = (
    (Role.CLINICIAN, "TREATMENT"),
    (Role.BILLING, "PAYMENT"),
    (Role.COMPLIANCE_OFFICER, "COMPLIANCE"),
    (Role.ANALYST, "RESEARCH"),
)
# Lines for the end of the test output (tests/conftest.py prints them): what the
# generators sent and what came back.
SUMMARY: list[str] = []
SECURITY_HEADERS = (
    "x-request-id",
    "strict-transport-security",
    "x-content-type-options",
    "content-security-policy",
    "cache-control",
)


@dataclass(frozen=True)
class Served:
    base: str
    callers: dict[str, dict[str, str]]  # role -> Authorization and X-Purpose-Of-Use
    postgres: EmbeddedPostgres
    database: str


async def _prepare(postgres: EmbeddedPostgres, database: str) -> dict[str, dict[str, str]]:
    """Demo data, and a user with a live session (and its token) per role."""
    from db.demo import seed_demo
    from graph.identity import build_identity
    from tests.identity import issue_token

    admin = create_engine(postgres.admin_target(database), pool_size=1, max_overflow=0)
    app = create_engine(postgres.app_target(database), pool_size=2, max_overflow=0)
    try:
        async with admin.begin() as connection:
            await seed_demo(
                connection, cipher=cipher_for_tests(), patients=20, now=datetime.now(UTC)
            )
        identity = build_identity(Settings(**TEST_KEYS, **FAST_HASHING), app)
        headers = {}
        for role, purpose in CALLERS:
            token = await issue_token(identity, role)
            headers[role.value] = {
                "Authorization": f"Bearer {token}",
                "X-Purpose-Of-Use": purpose,
            }
        return headers
    finally:
        await admin.dispose()
        await app.dispose()


@contextlib.contextmanager
def serve(postgres: EmbeddedPostgres, workdir: Path, **env: str) -> Iterator[Served]:
    database = f"t_{uuid.uuid4().hex[:16]}"
    postgres.ensure_database(database, template=TEMPLATE)
    callers = asyncio.run(_prepare(postgres, database))
    port = free_port()
    environment = gateway_env(
        postgres,
        database,
        **{
            "PHIGATE_RATE_LIMIT_GRAPHQL": "1000000/minute",
            "PHIGATE_ARGON2_TIME_COST": "1",
            "PHIGATE_ARGON2_MEMORY_KIB": "8192",
            "PHIGATE_LOG_LEVEL": "WARNING",
            **env,
        },
    )
    process = start_gateway(port, environment, workdir)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process)
        yield Served(base, callers, postgres, database)
    finally:
        process.terminate()
        process.wait(timeout=30)
        postgres.drop_database(database)
