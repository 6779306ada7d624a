"""Compliance overhead, in process: the same 100-patient x 10-field query (4 PHI
fields) through the schema with the authorization extension and without it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from db.unit_of_work import RequestDatabase
from domain.principals import Service
from domain.roles import ServiceScope
from graph.schema import build_schema
from resolvers.context import AccessRequest, RequestContext, RequestMeta
from tests.bench.harness import Database, interleaved, ratio, summary

QUERY = """
query Hundred {
  patients(first: 100) {
    edges { node {
      id mrn givenName familyName dateOfBirth
      retentionClass createdAt updatedAt legalHold { active reason }
    } }
  }
}
"""
READER = Service(client_id="bench", scopes=frozenset({ServiceScope.PATIENTS_READ}))


async def run(db: Database, *, rounds: int) -> dict[str, Any]:
    from db.engine import create_engine

    engine = create_engine(db.app, pool_size=2, max_overflow=0)
    enforced, open_schema = build_schema(), build_schema(enforce=False)
    access = AccessRequest(principal=READER, purpose_header="TREATMENT")

    def execute(schema: Any) -> Any:
        async def once() -> None:
            context = RequestContext(
                db=RequestDatabase(engine, settings=access.scope.settings()),
                meta=RequestMeta(request_id="bench"),
                now=datetime.now(UTC),
                access=access,
            )
            result = await schema.execute(QUERY, context_value=context)
            assert not result.errors and len(result.data["patients"]["edges"]) == 100, result.errors

        return once

    try:
        results = await interleaved(
            {"enforced": execute(enforced), "not_enforced": execute(open_schema)}, rounds=rounds
        )
    finally:
        await engine.dispose()
    return {
        "case": "enforcement overhead, 100 patients x 10 fields (4 PHI), in process",
        "ratio_enforced_over_not": ratio(results, "enforced", "not_enforced"),
        "target_ratio": 1.05,
        "timings": summary(results),
    }
