"""Every relation is batched by per-request loaders: the statements a request sends do
not grow with the number of rows it returns."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from db.demo import demo_id, seed_demo
from db.models import BreachAffectedPatient, BreachIncident
from domain.purposes import Purpose
from graph.settings import Settings
from tests.conftest import FAST_HASHING, TEST_KEYS, StatementCounter, cipher_for_tests
from tests.e2e.test_planned_execution import endpoint
from tests.graphql_client import GraphQLClient

SIZES = (1, 10, 100, 1000)
# Every authenticated request: the database's check of the session, which also sets the
# transaction's row context (phigate.begin_request), and the rate-limit counter; every
# request that reads PHI: one COPY of its audit entries.
AUTHENTICATION = 2
AUDIT = 1


@pytest.fixture
def settings() -> Settings:
    # Leases of one: every request counts its rate-limit hit in the database, so every
    # request sends the same statements (in service a lease covers ten requests).
    return Settings(
        **TEST_KEYS, **FAST_HASHING, max_page_size=1000, max_cost=1_000_000, rate_limit_lease=1
    )


@pytest.fixture
async def gql(service) -> GraphQLClient:
    """A service that may read every patient and breach for TREATMENT: the widest reach
    the policy gives, so the counts measure loading, not filtering."""
    return await service("patients:read", "breaches:read", purpose=Purpose.TREATMENT)


@pytest.fixture
async def hundred_patients(admin_engine: AsyncEngine) -> None:
    now = datetime.now(UTC)
    async with admin_engine.begin() as connection:  # seeding is the schema owner's
        await seed_demo(connection, cipher=cipher_for_tests(), patients=1000, now=now)
        for size in SIZES:
            breach_id = demo_id("breach-size", size)
            await connection.execute(
                insert(BreachIncident),
                {
                    "id": breach_id,
                    "title": f"Synthetic breach of {size}",
                    "discovered_at": now,
                    "status": "REPORTED",
                    "affected_count": size,
                    "phi_categories": ["CLINICAL"],
                    "remediation_actions": [],
                },
            )
            await connection.execute(
                insert(BreachAffectedPatient),
                [
                    {"breach_id": breach_id, "patient_id": demo_id("patient", n)}
                    for n in range(1, size + 1)
                ],
            )


PATIENTS_WITH_RELATIONS = "query($n: Int) { patients(first: $n) { edges { node { id diagnoses { icd10Code } consents { status } } } } }"


async def test_patient_list_with_relations_is_three_statements_at_any_size(
    gql: GraphQLClient, statements: StatementCounter, hundred_patients: None, app: Starlette
) -> None:
    # graphql-core's path, the loaders' batching (plans are counted below).
    endpoint(app).enabled = False
    counts = {}
    for size in SIZES:
        before = statements.count
        edges = (await gql(PATIENTS_WITH_RELATIONS, {"n": size})).ok()["patients"]["edges"]
        assert len(edges) == size
        assert all(edge["node"]["diagnoses"] for edge in edges)
        counts[size] = statements.count - before
    # patients, diagnoses, consents
    assert counts == dict.fromkeys(SIZES, 3 + AUTHENTICATION + AUDIT), counts


async def test_a_planned_patient_list_with_relations_is_one_statement_at_any_size(
    gql: GraphQLClient, statements: StatementCounter, hundred_patients: None
) -> None:
    """With its plan: the session check, the page, each patient's diagnoses and
    consents, and the audit entries, in one statement (the rate-limit lease aside)."""
    learnt = await gql(PATIENTS_WITH_RELATIONS, {"n": 1})
    counts, answers = {}, {}
    for size in SIZES:
        before = statements.count
        answers[size] = (await gql(PATIENTS_WITH_RELATIONS, {"n": size})).ok()
        counts[size] = statements.count - before
    assert counts == dict.fromkeys(SIZES, 1 + 1), counts  # and the lease (of one, here)
    assert answers[1] == learnt.ok()
    edges = answers[1000]["patients"]["edges"]
    assert len(edges) == 1000 and all(edge["node"]["diagnoses"] for edge in edges)


async def test_breach_to_patients_to_diagnoses_is_one_statement_per_level(
    gql: GraphQLClient, statements: StatementCounter, hundred_patients: None
) -> None:
    query = "query($id: ID!) { breach(id: $id) { id affectedPatients { id diagnoses { icd10Code } consents { status } } jurisdictions { jurisdiction } } }"
    counts = {}
    for size in SIZES:
        before = statements.count
        breach = (await gql(query, {"id": str(demo_id("breach-size", size))})).ok()["breach"]
        assert len(breach["affectedPatients"]) == size
        counts[size] = statements.count - before
    # breach, affected patients, their diagnoses, their consents, jurisdictions
    assert counts == dict.fromkeys(SIZES, 5 + AUTHENTICATION + AUDIT), counts


async def test_breach_list_batches_across_breaches(
    gql: GraphQLClient, statements: StatementCounter, hundred_patients: None
) -> None:
    before = statements.count
    breaches = (
        await gql(
            "{ breaches { id affectedPatients { diagnoses { icd10Code } } notifications { method } } }"
        )
    ).ok()["breaches"]
    assert len(breaches) == len(SIZES) + 2  # and the two seeded ones
    # breaches, affected patients (all breaches at once), diagnoses, notifications
    assert statements.count - before == 4 + AUTHENTICATION + AUDIT
