"""The benchmark cases that reach into the gateway's internals still run against them:
`caches` builds the validation rules as the gateway does, and broke unnoticed when the
rules took a third limit (found running every case, 2026-12-03)."""

from __future__ import annotations

import asyncio

from tests.bench import bench_caches


def test_the_caches_case_runs_and_finds_the_caches_work() -> None:
    result = asyncio.run(bench_caches.run(None, rounds=1))  # type: ignore[arg-type]
    assert result["warm_us"] < result["cold_us"]
