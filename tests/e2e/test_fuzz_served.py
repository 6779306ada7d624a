"""A real external fuzzer against the served gateway: schemathesis (its GraphQL support)
generates operations for every query and mutation of schema.graphql and sends them over
HTTP to `phigate serve`, with a token per role and its purpose of use.

Bounded for CI (PHIGATE_SCHEMATHESIS_EXAMPLES, 6 per operation by default, each sent as
four callers); raise it for a long run. Every response: no 5xx, no INTERNAL_ERROR or
ENFORCEMENT_FAILED, the request id and the security headers.

Strings include NUL characters (refused as BAD_USER_INPUT naming the field, never passed
to PostgreSQL); a JSON body cannot carry a lone surrogate in UTF-8, so those are covered
by tests/e2e/test_hostile_input.py. A report of what was sent and answered (status and
error codes, per caller) is written to the test output at the end of the module.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from db.embedded import EmbeddedPostgres
from tests.e2e.served import SECURITY_HEADERS, SUMMARY, serve

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("PHIGATE_SCHEMATHESIS_EXAMPLES", "6"))

schema = schemathesis.graphql.from_path(ROOT / "schema.graphql")
schema.config.generation.update(allow_x00=True, codec="utf-8")
REPORT: Counter[str] = Counter()


@pytest.fixture(scope="module")
def served(
    postgres: EmbeddedPostgres,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Any]:
    """`phigate serve` on a database of its own, for the whole module; then the report."""
    with serve(postgres, tmp_path_factory.mktemp("served")) as gateway:
        yield gateway.base, gateway.callers
    if REPORT:
        SUMMARY.append(
            f"schemathesis: {REPORT['requests']} requests ({EXAMPLES} examples an operation,"
            f" {len(gateway.callers)} callers each); answers: "
            + ", ".join(
                f"{key}: {count}" for key, count in sorted(REPORT.items()) if key != "requests"
            )
        )


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
        REPORT["requests"] += 1
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
            REPORT[f"{response.status_code} " + ",".join(sorted(map(str, codes)) or ["data"])] += 1
            assert not codes & {"INTERNAL_ERROR", "ENFORCEMENT_FAILED"}, (codes, described)
        else:
            REPORT[f"{response.status_code} {headers_seen.get('content-type', '')}"] += 1
