from __future__ import annotations

import json
import uuid

import httpx
import pytest
from starlette.applications import Starlette

from db.engine import DatabaseTarget
from graph.http.app import create_app, engine_of
from graph.settings import Settings
from tests.graph.queries import CREATE_PATIENT, patient_input
from tests.graphql_client import GraphQLClient


def log_lines(captured: str) -> list[dict]:
    return [json.loads(line) for line in captured.splitlines() if line.startswith("{")]


async def test_health_says_ok_and_nothing_else(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "server" not in response.headers


async def test_ready_when_the_database_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")
    assert (response.status_code, response.json()) == (200, {"status": "ready"})


async def test_not_ready_when_the_database_is_missing(
    postgres, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(settings, target=postgres.app_target("no_such_database"))
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as http:
            response = await http.get("/ready")
    finally:
        await engine_of(app).dispose()
    assert (response.status_code, response.json()) == (503, {"status": "unavailable"})
    assert "no_such_database" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("offered", "echoed"),
    [("trace-abc.123", True), ("has spaces", False), ("x" * 65, False), (None, False)],
)
async def test_request_id_is_echoed_or_generated(
    client: httpx.AsyncClient, offered: str | None, echoed: bool
) -> None:
    headers = {"X-Request-ID": offered} if offered else {}
    response = await client.get("/health", headers=headers)
    request_id = response.headers["x-request-id"]
    if echoed:
        assert request_id == offered
    else:
        assert request_id != offered and len(request_id) == 32


async def test_queries_over_get_and_mutations_refused_over_get(
    gql: GraphQLClient, seeded: int
) -> None:
    response = await gql.http.get(
        "/graphql",
        params={"query": "{ patients(first: 2) { edges { node { id } } } }"},
        headers=gql.headers,
    )
    assert response.status_code == 200
    assert len(response.json()["data"]["patients"]["edges"]) == 2
    document = 'mutation { consentRecord(input: {patientId: "x", consentType: TREATMENT, status: GRANTED, effectiveDate: "2026-01-01"}) { consent { id } } }'
    mutation = await gql.http.get("/graphql", params={"query": document}, headers=gql.headers)
    assert mutation.status_code == 405


async def test_responses_are_not_cacheable_and_not_sniffable(gql: GraphQLClient) -> None:
    response = await gql.http.post(
        "/graphql", json={"query": "{ baas { id } }"}, headers=gql.headers
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


async def test_one_log_line_per_request_without_bodies_or_variables(
    clinician: GraphQLClient, client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    gql = clinician
    capsys.readouterr()
    canary_ssn, canary_name = "987-65-4329", "Canarybird"
    await gql(
        CREATE_PATIENT,
        {"input": patient_input(ssn=canary_ssn, givenName=canary_name)},
        headers={"X-Request-ID": "req-1"},
    )
    await gql(
        CREATE_PATIENT,
        {"input": patient_input(mrn="bad mrn", givenName=canary_name)},
        headers={"X-Request-ID": "req-2"},
    )
    await client.get(
        "/graphql",
        params={"query": f'{{ patient(id: "{canary_ssn}") {{ id }} }}'},
        headers={"X-Request-ID": "req-3", **gql.headers},
    )
    output = capsys.readouterr().err
    assert canary_ssn not in output and canary_name not in output
    lines = log_lines(output)
    requests = [line for line in lines if line["event"] == "request"]
    assert [line["request_id"] for line in requests] == ["req-1", "req-2", "req-3"]
    for line in requests:
        assert set(line) <= {
            "event",
            "level",
            "timestamp",
            "request_id",
            "method",
            "path",
            "status",
            "duration_ms",
            "client_ip",
        }
        assert line["path"] == "/graphql" and line["duration_ms"] >= 0


async def test_an_internal_failure_is_masked_and_logged_without_its_message(
    gql: GraphQLClient, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from resolvers import patients

    async def explode(*_: object, **__: object) -> None:
        raise RuntimeError("SELECT * FROM phigate.patients WHERE ssn = '987-65-4321'")

    monkeypatch.setattr(patients, "patient", explode)
    capsys.readouterr()
    response = await gql("query($id: ID!) { patient(id: $id) { id } }", {"id": str(uuid.uuid4())})
    assert response.codes == ["INTERNAL_ERROR"]
    assert (
        response.errors[0]["message"]
        == "Internal error. Quote the request id to your administrator."
    )
    assert "987-65-4321" not in response.raw and "SELECT" not in response.raw
    output = capsys.readouterr().err
    assert "987-65-4321" not in output and "SELECT" not in output
    failure = next(line for line in log_lines(output) if line["event"] == "resolver_failed")
    assert failure["exc_type"] == "RuntimeError"
    assert failure["exc_location"].startswith("tests/e2e/test_http.py:")


async def test_log_allowlist_drops_unknown_keys(capsys: pytest.CaptureFixture[str]) -> None:
    import structlog

    capsys.readouterr()
    structlog.get_logger("phigate.test").info("probe", ssn="987-65-4321", count=3)
    line = log_lines(capsys.readouterr().err)[-1]
    assert line["count"] == 3
    assert "ssn" not in line


def test_app_factory_does_not_connect_at_import(
    app_target: DatabaseTarget, settings: Settings
) -> None:
    app = create_app(settings, target=app_target)
    assert isinstance(app, Starlette)
    assert engine_of(app).pool.checkedout() == 0


async def test_an_error_beside_a_running_field_is_that_error_not_an_internal_one(
    gql: GraphQLClient,
) -> None:
    """Found by the generated-operations test: a non-null field failing (no such BAA)
    nulls the whole response, graphql-core abandons the sibling still reading, and its
    cancelled statement left the transaction unusable: INTERNAL_ERROR instead of
    NOT_FOUND, and the refusal's audit entries lost."""
    response = await gql(
        "{ phiServices(uncoveredOnly: false) { coveringBaaId }"
        ' baa(id: "0106df7c-8f68-551f-8160-77d94751e3c9") { updatedAt } }',
        headers={"X-Request-ID": "sibling-cancelled"},
    )
    assert response.data is None
    assert response.codes == ["NOT_FOUND"]


def test_library_log_lines_are_formatted_only_for_the_servers_own_facts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """uvicorn's own messages (process ids, addresses) are readable; a library that can
    carry statement parameters (SQLAlchemy) keeps only its template."""
    import logging

    capsys.readouterr()
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 4242)
    logging.getLogger("sqlalchemy.engine").warning("parameters %s", "987-65-4321")
    lines = log_lines(capsys.readouterr().err)
    assert lines[-2]["event"] == "Started server process [4242]"
    assert lines[-1]["event"] == "parameters %s"
