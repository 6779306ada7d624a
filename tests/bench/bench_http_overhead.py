"""Compliance overhead end to end, over HTTP: the compliance benchmark's 100-patient x
10-field query (4 PHI fields, 2 encrypted) sent to two gateway processes that differ
only in their schema: the full one, and one with minimum-necessary enforcement and the
audit trail off. Both authenticate the caller, apply row-level security and decrypt.
One uvicorn worker each, one request at a time, interleaved; medians and their ratio."""

from __future__ import annotations

import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.bench.bench_baseline import _start
from tests.bench.bench_compliance import QUERY
from tests.bench.harness import Database, bench_identity, server_env
from tests.e2e.test_serve import free_port, wait_ready
from tests.identity import service_token

CASES = ("full", "bare")


async def run(db: Database, *, rounds: int) -> dict[str, Any]:
    async with bench_identity(db) as identity:
        token = await service_token(identity, ("patients:read",))
    env = server_env(db)
    uvicorn = str(Path(sys.executable).parent / "uvicorn")
    ports = {case: free_port() for case in CASES}
    servers = {}
    for case, port in ports.items():
        factory = f"tests.bench.served_app:{case}"
        command = [uvicorn, "--factory", factory, "--port", str(port), "--log-level", "warning"]
        # Only the full gateway writes audit entries; a sequencer in the bare one would
        # seal them on its CPU.
        seal = {"PHIGATE_AUDIT_SEAL_SECONDS": "2" if case == "full" else "0"}
        servers[case] = _start(command, {**env, **seal})
    headers = {"Authorization": f"Bearer {token}", "X-Purpose-Of-Use": "TREATMENT"}
    timings: dict[str, list[float]] = {case: [] for case in CASES}
    try:
        clients = {}
        for case, port in ports.items():
            wait_ready(f"http://127.0.0.1:{port}", servers[case])  # type: ignore[arg-type]
            clients[case] = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30)
        warmup = 20
        for attempt in range(rounds + warmup):
            for case in CASES if attempt % 2 else reversed(CASES):
                started = time.perf_counter()
                response = await clients[case].post(
                    "/graphql", json={"query": QUERY}, headers=headers
                )
                elapsed = (time.perf_counter() - started) * 1000
                body = response.json()
                assert "errors" not in body, body["errors"]
                assert len(body["data"]["patients"]["edges"]) == 100
                if attempt >= warmup:
                    timings[case].append(elapsed)
        for client in clients.values():
            await client.aclose()
    finally:
        for server in servers.values():
            server.send_signal(signal.SIGINT)
            server.wait(timeout=60)
    full, bare = (statistics.median(timings[case]) for case in CASES)
    # Each round times both back to back: the median of per-round ratios.
    paired = statistics.median(a / b for a, b in zip(*timings.values(), strict=True))
    return {
        "case": "100 patients x 10 fields (4 PHI, 2 encrypted) over HTTP: full gateway vs "
        "enforcement and audit off (both authenticate, apply row-level security, decrypt)",
        "full_ms": round(full, 2),
        "bare_ms": round(bare, 2),
        "ratio": round(paired, 3),
        "target": 1.20,
        "samples": rounds,
    }
