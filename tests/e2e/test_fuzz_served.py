"""A real external fuzzer against the served gateway: schemathesis (its GraphQL support)
generates operations for every query and mutation of schema.graphql and sends them over
HTTP to `phigate serve`, with a token per role and its purpose of use.

Bounded for CI (PHIGATE_SCHEMATHESIS_EXAMPLES, 6 per operation by default, each sent as
four callers); raise it for a long run. Every response: no 5xx, no INTERNAL_ERROR or
ENFORCEMENT_FAILED, the request id and the security headers.

Strings are generated without NUL bytes and in UTF-8 (no lone surrogates): PostgreSQL
refuses those, and answering them as a client error everywhere is its own work (issue 14).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from db.embedded import EmbeddedPostgres
from db.engine import create_engine
from domain.roles import Role
from graph.settings import Settings
from tests.conftest import FAST_HASHING, TEMPLATE, TEST_KEYS, cipher_for_tests
from tests.e2e.test_serve import free_port, gateway_env, start_gateway, wait_ready

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("PHIGATE_SCHEMATHESIS_EXAMPLES", "6"))

schema = schemathesis.graphql.from_path(ROOT / "schema.graphql")
schema.config.generation.update(allow_x00=False, codec="utf-8")

CALLERS = (
    (Role.CLINICIAN, "TREATMENT"),
    (Role.BILLING, "PAYMENT"),
    (Role.COMPLIANCE_OFFICER, "COMPLIANCE"),
    (Role.ANALYST, "RESEARCH"),
)
SECURITY_HEADERS = (
    "x-request-id",
    "strict-transport-security",
    "x-content-type-options",
    "content-security-policy",
    "cache-control",
)


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


@pytest.fixture(scope="module")
def served(postgres: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """`phigate serve` on a database of its own, for the whole module."""
    database = f"t_{uuid.uuid4().hex[:16]}"
    postgres.ensure_database(database, template=TEMPLATE)
    callers = asyncio.run(_prepare(postgres, database))
    port = free_port()
    env = gateway_env(
        postgres,
        database,
        PHIGATE_RATE_LIMIT_GRAPHQL="1000000/minute",
        PHIGATE_ARGON2_TIME_COST="1",
        PHIGATE_ARGON2_MEMORY_KIB="8192",
        PHIGATE_LOG_LEVEL="WARNING",
    )
    process = start_gateway(port, env, tmp_path_factory.mktemp("served"))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process)
        yield base, callers
    finally:
        process.terminate()
        process.wait(timeout=30)
        postgres.drop_database(database)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_the_fuzzer_finds_no_server_error(case: Any, served: Any) -> None:
    base, callers = served
    for headers in callers.values():
        response = case.call(base_url=f"{base}/graphql", headers=headers)
        described = f"{case.operation.label} {case.body}"
        assert response.status_code < 500, (response.status_code, described)
        headers_seen = {
            name.lower(): value[0] if isinstance(value, list) else value
            for name, value in response.headers.items()
        }
        for name in SECURITY_HEADERS:
            assert name in headers_seen, (name, described)
        assert headers_seen["cache-control"] == "no-store"
        if headers_seen.get("content-type", "").startswith("application/json"):
            body = response.json()
            codes = {
                (error.get("extensions") or {}).get("code")
                for error in (body.get("errors") or [])
                if isinstance(body, dict)
            }
            assert not codes & {"INTERNAL_ERROR", "ENFORCEMENT_FAILED"}, (codes, described)
