"""Persisted operations: in strict mode only registered documents run (analysts may
still explore); automatic persisted queries outside it; the Apollo wire protocol."""

from __future__ import annotations

import json

import httpx
import pytest
from starlette.applications import Starlette

from db import operations
from domain.purposes import Purpose
from domain.roles import Role
from graph.execution.persisted import digest
from graph.http.app import engine_of
from graph.settings import Settings
from tests.conftest import FAST_HASHING, TEST_KEYS, AsRole

LIST = "query FirstPatients { patients(first: 2) { edges { node { id } } } }"


def persisted(sha256: str) -> dict:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha256}}


@pytest.fixture
def settings() -> Settings:
    return Settings(**TEST_KEYS, **FAST_HASHING, operations="strict")


async def test_strict_mode_runs_registered_operations_only(
    app: Starlette, as_role: AsRole, client: httpx.AsyncClient, token_for
) -> None:
    clinician = await as_role(Role.CLINICIAN, Purpose.TREATMENT)
    adhoc = await clinician(LIST)
    assert adhoc.data is None and adhoc.codes == ["PERSISTED_QUERY_REQUIRED"]
    by_hash_and_text = await clinician(LIST, extensions=persisted(digest(LIST)))
    assert by_hash_and_text.codes == ["PERSISTED_QUERY_REQUIRED"]  # no self-registration

    await operations.store(
        engine_of(app), digest(LIST), LIST, source="REGISTERED", registered_by="cli:test"
    )
    assert (await clinician(None, extensions=persisted(digest(LIST)))).errors == []
    assert (await clinician(LIST)).errors == []  # the registered text itself is fine too
    unknown = await clinician(None, extensions=persisted("0" * 64))
    assert unknown.codes == ["PERSISTED_QUERY_NOT_FOUND"]
    assert unknown.errors[0]["message"] == "PersistedQueryNotFound"
    wrong = await clinician("{ __typename }", extensions=persisted(digest(LIST)))
    assert wrong.codes == ["BAD_USER_INPUT"]

    # A short, cacheable GET by hash.
    headers = {
        "Authorization": f"Bearer {await token_for(Role.CLINICIAN)}",
        "X-Purpose-Of-Use": "TREATMENT",
    }
    response = await client.get(
        "/graphql",
        params={"extensions": json.dumps(persisted(digest(LIST)))},
        headers=headers,
    )
    assert response.status_code == 200, (response.status_code, response.text[:200])
    assert "errors" not in response.json()

    analyst = await as_role(Role.ANALYST, Purpose.RESEARCH)
    explored = await analyst("{ deidentifiedCounts(by: AGE_BAND) { minimumCellSize } }")
    assert explored.errors == []


async def test_open_mode_remembers_automatic_persisted_queries(
    app: Starlette, as_role: AsRole, monkeypatch: pytest.MonkeyPatch
) -> None:
    from graph.execution.persisted import OperationsMode

    # Same app, open mode: the view's store decides, so flip it for this test.
    endpoint = next(
        route.endpoint for route in app.routes if getattr(route, "path", "") == "/graphql"
    )
    monkeypatch.setattr(endpoint.view.persisted, "mode", OperationsMode.OPEN)
    clinician = await as_role(Role.CLINICIAN, Purpose.TREATMENT)
    first = await clinician(None, extensions=persisted(digest(LIST)))
    assert first.codes == ["PERSISTED_QUERY_NOT_FOUND"]
    assert (await clinician(LIST, extensions=persisted(digest(LIST)))).errors == []
    assert (await clinician(None, extensions=persisted(digest(LIST)))).errors == []
    assert (await clinician("{ __typename }")).errors == []
