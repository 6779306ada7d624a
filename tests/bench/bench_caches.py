"""What the caches save before execution: parsing, validation (with the query-limit
rules) and the minimum-necessary decision for the 100-patient document, repeated (all
cached) against novel each time (a unique alias defeats every cache)."""

from __future__ import annotations

import itertools
import statistics
import time
from typing import Any

from graphql import specified_rules
from strawberry.extensions.validation_cache import _get_validate_cache

from graph.enforcement.authorization import authorize
from graph.extensions.caches import _cached_parse
from graph.extensions.limits import limit_rules
from graph.schema import schema
from resolvers.context import AccessRequest, QueryLimits
from tests.bench.bench_compliance import QUERY
from tests.bench.harness import READER, Database

cached_validate = _get_validate_cache(1024)


def _timed(step: Any, runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        step()
        samples.append((time.perf_counter() - started) * 1e6)
    return statistics.median(samples)


async def run(db: Database, *, rounds: int) -> dict[str, Any]:
    graphql_schema = schema._schema
    limits = QueryLimits()
    rules = (*specified_rules, *limit_rules(limits))
    access = AccessRequest(principal=READER, purpose_header="TREATMENT")
    unique = itertools.count()

    def pre_execution(text: str) -> None:
        document = _cached_parse(text, max_tokens=limits.max_tokens)
        assert not cached_validate(graphql_schema, document, rules)
        authorize(graphql_schema, document, None, {}, access)

    def cold() -> None:
        pre_execution(QUERY.replace("patients(", f"p{next(unique)}: patients(", 1))

    def warm() -> None:
        pre_execution(QUERY)

    runs = max(rounds * 5, 500)
    warm()
    cold_us, warm_us = _timed(cold, runs), _timed(warm, runs)
    return {
        "case": "parse + validate + decide, the 100-patient x 10-field document",
        "cold_us": round(cold_us, 1),
        "warm_us": round(warm_us, 1),
        "cold_over_warm": round(cold_us / warm_us, 1),
        "target_at_least": 5,
    }
