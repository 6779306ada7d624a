"""Compliance overhead in process: the same 100-patient x 10-field query (4 PHI fields,
2 of them encrypted) through the full gateway schema, without the audit trail, and
without either minimum-necessary enforcement or audit. Row-level security is on in all
three, and all three decrypt (the columns are stored encrypted; decryption's own cost
is measured by the encryption benchmark)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from db.engine import create_engine
from db.unit_of_work import RequestDatabase
from domain.principals import Service
from domain.roles import ServiceScope
from graph.schema import build_schema
from resolvers.context import AccessRequest, RequestContext, RequestMeta
from tests.bench.harness import Database, bench_cipher, interleaved, ratio, summary

QUERY = """
query Hundred {
  patients(first: 100) {
    edges { node {
      id givenName familyName ssn insuranceMemberId
      retentionClass createdAt updatedAt legalHold { active reason }
    } }
  }
}
"""
READER = Service(client_id="bench", scopes=frozenset({ServiceScope.PATIENTS_READ}))


async def run(db: Database, *, rounds: int) -> dict[str, Any]:
    engine = create_engine(db.app, pool_size=2, max_overflow=0)
    schemas = {
        "full": build_schema(),
        "no_audit": build_schema(audit=False),
        "neither": build_schema(audit=False, enforce=False),
    }
    access = AccessRequest(principal=READER, purpose_header="TREATMENT")
    cipher = bench_cipher()

    def execute(schema: Any) -> Any:
        async def once() -> None:
            context = RequestContext(
                db=RequestDatabase(engine, settings=access.scope.settings()),
                meta=RequestMeta(request_id="bench"),
                now=datetime.now(UTC),
                access=access,
                cipher=cipher,
            )
            result = await schema.execute(QUERY, context_value=context)
            assert not result.errors and len(result.data["patients"]["edges"]) == 100, result.errors

        return once

    try:
        results = await interleaved(
            {name: execute(schema) for name, schema in schemas.items()}, rounds=rounds
        )
    finally:
        await engine.dispose()
    return {
        "case": "100 patients x 10 fields (4 PHI, 2 encrypted), in process; 400 audit entries per request when audited",
        "audit_overhead_ratio": ratio(results, "full", "no_audit"),
        "audit_target": 1.10,
        "enforcement_overhead_ratio": ratio(results, "no_audit", "neither"),
        "enforcement_target": 1.05,
        "total_ratio": ratio(results, "full", "neither"),
        "timings": summary(results),
    }
