"""An attacker's view over HTTP (OWASP GraphQL cheat sheet, API Security Top 10): each
attempt is refused before anything executes, says which rule refused it without
echoing the query, and leaves nothing written."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.purposes import Purpose
from domain.roles import Role
from graph.settings import Settings
from tests.conftest import FAST_HASHING, TEST_KEYS, AsRole, count_rows
from tests.graph.queries import CREATE_PATIENT, patient_input
from tests.graphql_client import GraphQLClient

FOREIGN = "https://evil.example.test"
FRONTEND = "https://app.example.test"


@pytest.fixture
def settings() -> Settings:
    return Settings(
        **TEST_KEYS,
        **FAST_HASHING,
        max_depth=3,
        cors_origins=(FRONTEND,),
        execution_timeout_seconds=1,
        max_body_bytes=64 * 1024,
    )


def refused_by(response: object, limit: str) -> None:
    assert response.data is None  # type: ignore[attr-defined]
    [error] = response.errors  # type: ignore[attr-defined]
    assert error["extensions"]["code"] == "LIMIT_EXCEEDED"
    assert f"the {limit} limit" in error["message"]


async def test_depth_counted_through_fragments(clinician: GraphQLClient) -> None:
    deep = """query Deep { ...A }
    fragment A on Query { patients { edges { node { diagnoses { icd10Code } } } } }"""
    refused_by(await clinician(deep), "depth")


async def test_aliases_counted_through_fragment_spreads(clinician: GraphQLClient) -> None:
    first = " ".join(f"a{n}: __typename" for n in range(8))
    second = " ".join(f"b{n}: __typename" for n in range(8))
    query = f"query {{ ...F ...G }} fragment F on Query {{ {first} }} fragment G on Query {{ {second} }}"
    refused_by(await clinician(query), "aliases")


async def test_token_flood(clinician: GraphQLClient) -> None:
    refused_by(await clinician("{ " + "__typename " * 2100 + "}"), "tokens")


async def test_directive_overloading(clinician: GraphQLClient) -> None:
    refused_by(await clinician("{ " + "__typename @include(if: true) " * 60 + "}"), "directives")


async def test_cost_from_page_sizes(clinician: GraphQLClient) -> None:
    page = "patients(first: 100) { edges { node { id mrn givenName familyName dateOfBirth } } }"
    # 100 x (patients + edges + node + 5 fields) = 800 a page; seven pages: 5,600 > 5,000.
    refused_by(await clinician("{ " + " ".join(f"p{n}: {page}" for n in range(7)) + " }"), "cost")
    allowed = "{ " + " ".join(f"p{n}: {page}" for n in range(6)) + " }"
    assert (await clinician(allowed)).errors == []
    # A variable page size counts as what it will be.
    one = await clinician(
        "query($n: Int) { patients(first: $n) { edges { node { id } } } }", {"n": 1}
    )
    assert one.errors == []


async def test_batched_requests_are_refused(client: httpx.AsyncClient, token_for) -> None:
    headers = {"Authorization": f"Bearer {await token_for(Role.CLINICIAN)}"}
    batch = [{"query": "{ __typename }"}] * 3
    response = await client.post("/graphql", json=batch, headers=headers)
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", '{"query": "mutation { __typename }"}'),
        ("application/x-www-form-urlencoded", "query=mutation+%7B+__typename+%7D"),
        ("multipart/form-data; boundary=x", "--x--"),
    ],
)
async def test_cross_site_posts_cannot_reach_graphql(
    client: httpx.AsyncClient,
    token_for,
    content_type: str,
    body: str,
    app_engine: AsyncEngine,
    admin_engine: AsyncEngine,
) -> None:
    headers = {
        "Authorization": f"Bearer {await token_for(Role.CLINICIAN)}",
        "Content-Type": content_type,
    }
    response = await client.post("/graphql", content=body, headers=headers)
    assert response.status_code == 415
    assert response.json()["errors"][0]["extensions"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert await count_rows(admin_engine, "patients") == 0


async def test_oversized_bodies_are_refused_declared_or_not(
    client: httpx.AsyncClient, token_for
) -> None:
    headers = {"Authorization": f"Bearer {await token_for(Role.CLINICIAN)}"}
    padding = "x" * (65 * 1024)
    declared = await client.post(
        "/graphql", json={"query": "{ __typename }", "padding": padding}, headers=headers
    )
    assert declared.status_code == 413

    async def chunks():
        yield b'{"query": "{ __typename }", "padding": "'
        for _ in range(70):
            yield b"x" * 1024
        yield b'"}'

    streamed = await client.post(
        "/graphql",
        content=chunks(),
        headers={**headers, "Content-Type": "application/json"},
    )
    assert streamed.status_code == 413


async def test_cors_allows_only_the_configured_origin(client: httpx.AsyncClient) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, x-purpose-of-use",
    }
    foreign = await client.options("/graphql", headers={**preflight, "Origin": FOREIGN})
    assert "access-control-allow-origin" not in foreign.headers
    allowed = await client.options("/graphql", headers={**preflight, "Origin": FRONTEND})
    assert allowed.headers["access-control-allow-origin"] == FRONTEND
    assert "access-control-allow-credentials" not in allowed.headers


async def test_no_schema_for_strangers_and_no_suggestions(
    client: httpx.AsyncClient, as_role: AsRole
) -> None:
    anonymous = await client.post("/graphql", json={"query": "{ __schema { types { name } } }"})
    assert anonymous.status_code == 401 and "__schema" not in anonymous.text
    clinician = await as_role(Role.CLINICIAN, Purpose.TREATMENT)
    typo = await clinician("{ patiens { edges { node { id } } } }")
    assert typo.data is None and "Did you mean" not in str(typo.errors)


async def test_a_slow_operation_is_stopped_and_writes_nothing(
    clinician: GraphQLClient,
    monkeypatch: pytest.MonkeyPatch,
    app_engine: AsyncEngine,
    admin_engine: AsyncEngine,
) -> None:
    from resolvers import patients

    original = patients.create_patient

    async def slow(*args, **kwargs):
        row = await original(*args, **kwargs)
        await asyncio.sleep(3)
        return row

    monkeypatch.setattr(patients, "create_patient", slow)
    stopped = await clinician(CREATE_PATIENT, {"input": patient_input()})
    assert stopped.data is None and stopped.codes == ["TIMEOUT"]
    assert await count_rows(admin_engine, "patients") == 0


async def test_every_response_carries_transport_and_content_policies(
    client: httpx.AsyncClient, clinician: GraphQLClient
) -> None:
    api = await client.get("/health")
    assert api.headers["strict-transport-security"].startswith("max-age=")
    assert api.headers["content-security-policy"].startswith("default-src 'none'")
    sent = await client.get("/graphql", headers={"Accept": "text/html"})
    assert (sent.status_code, sent.headers["location"]) == (303, "/console")
    page = await client.get("/console")
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self';" in policy
    assert "unsafe-inline" not in policy and "https:" not in policy
