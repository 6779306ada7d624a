"""Compliance overhead in process: the same 100-patient x 10-field query (4 PHI fields,
2 of them encrypted) through the full gateway schema, without the audit trail, and
without either minimum-necessary enforcement or audit. Row-level security is on in all
three, and all three decrypt (the columns are stored encrypted; decryption's own cost
is measured by the encryption benchmark)."""

from __future__ import annotations

from typing import Any

from db.engine import create_engine
from graph.schema import build_schema
from tests.bench.harness import Database, in_process, interleaved, ratio, reader_session, summary

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


async def run(db: Database, *, rounds: int) -> dict[str, Any]:
    engine = create_engine(db.app, pool_size=2, max_overflow=0)
    session = await reader_session(db)
    schemas = {
        "full": build_schema(),
        "no_audit": build_schema(audit=False),
        "neither": build_schema(audit=False, enforce=False),
    }
    try:
        for schema in schemas.values():  # every case returns the whole page
            result = await in_process(engine, schema, QUERY, session)()
            assert len(result.data["patients"]["edges"]) == 100
        results = await interleaved(
            {name: in_process(engine, schema, QUERY, session) for name, schema in schemas.items()},
            rounds=rounds,
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
