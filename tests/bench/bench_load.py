"""Throughput and tail latency over real HTTP: `phigate serve --workers 2` on the
benchmark database, driven by a bounded asyncio/httpx client on loopback at 16, 64 and
256 concurrent clients. Each request reads one patient's name (two PHI fields, so two
audit entries). Reports requests/s, p50/p99, errors, audit entries written against
those expected, and worker memory as requests accumulate. The load generator shares
the machine's cores with the server: figures are pessimistic on a 2-core box."""

from __future__ import annotations

import asyncio
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from db.demo import demo_id
from db.engine import create_engine
from domain.roles import Role
from tests.bench.harness import Database, bench_identity, server_env
from tests.e2e.test_serve import free_port, wait_ready
from tests.identity import issue_token

QUERY = "query One($id: ID!) { patient(id: $id) { id givenName familyName } }"
LEVELS = (16, 64, 256)
USERS = 64


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _workers(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text_ = (task / "children").read_text().split()
        children += [int(c) for c in text_]
    return children


async def _drive(base: str, tokens: list[str], patients: int, clients: int, requests: int) -> dict:
    latencies: list[float] = []
    errors = 0
    queue = list(range(requests))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as http:

        async def client(number: int) -> None:
            nonlocal errors
            rng = random.Random()
            # Each client is a different signed-in user, as in a clinic.
            headers = {
                "Authorization": f"Bearer {tokens[number % len(tokens)]}",
                "X-Purpose-Of-Use": "COMPLIANCE",
            }
            while queue:
                queue.pop()
                patient = str(demo_id("patient", rng.randrange(1, patients + 1)))
                started = time.perf_counter()
                try:
                    response = await http.post(
                        "/graphql",
                        json={"query": QUERY, "variables": {"id": patient}},
                        headers=headers,
                    )
                    ok = response.status_code == 200 and "errors" not in response.json()
                except httpx.HTTPError:
                    ok = False
                latencies.append((time.perf_counter() - started) * 1000)
                errors += not ok

        started = time.perf_counter()
        await asyncio.gather(*(client(n) for n in range(clients)))
        elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "clients": clients,
        "requests": requests,
        "requests_per_second": round(requests / elapsed, 1),
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1], 2),
        "errors": errors,
    }


WRK_SCRIPT = r"""
local ids = { @IDS@ }
local tokens = { @TOKENS@ }
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Purpose-Of-Use"] = "COMPLIANCE"
request = function()
  local id = ids[math.random(#ids)]
  wrk.headers["Authorization"] = "Bearer " .. tokens[math.random(#tokens)]
  return wrk.format(nil, "/graphql", nil,
    '{"query": "@QUERY@", "variables": {"id": "' .. id .. '"}}')
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %.3f %.3f\n", summary.requests,
    e.status + e.timeout + e.read + e.connect + e.write, summary.duration,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def _wrk(base: str, tokens: list[str], patients: int, clients: int, seconds: int) -> dict:
    """wrk (C, light on the CPU the server needs) when installed: `apt install wrk`."""
    ids = ", ".join(f'"{demo_id("patient", n)}"' for n in range(1, min(patients, 2000) + 1))
    script = Path(tempfile.mkdtemp()) / "load.lua"
    script.write_text(
        WRK_SCRIPT.replace("@IDS@", ids)
        .replace("@TOKENS@", ", ".join(f'"{t}"' for t in tokens))
        .replace("@QUERY@", QUERY.replace('"', '\\"'))
    )
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{clients}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            base,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(line for line in out.splitlines() if line.startswith("RESULT"))
    _, requests, errors, duration_us, p50, p99 = line.split()
    return {
        "clients": clients,
        "generator": "wrk",
        "requests": int(requests),
        "requests_per_second": round(int(requests) / (int(duration_us) / 1e6), 1),
        "p50_ms": float(p50),
        "p99_ms": float(p99),
        "errors": int(errors),
    }


async def run(db: Database, *, rounds: int, patients: int = 10_000) -> dict[str, Any]:
    async with bench_identity(db) as identity:
        tokens = [await issue_token(identity, Role.COMPLIANCE_OFFICER) for _ in range(USERS)]
    port = free_port()
    env = server_env(db, PHIGATE_DB_POOL_SIZE="20")
    script = Path(sys.executable).parent / "phigate"
    server = subprocess.Popen(  # noqa: ASYNC220 (a one-shot benchmark)
        [str(script), "serve", "--workers", "2", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    engine = create_engine(db.admin, pool_size=1, max_overflow=0)
    try:
        wait_ready(base, server)  # type: ignore[arg-type]
        await _drive(base, tokens, patients, 16, 200)  # warm-up: connections, caches
        async with engine.connect() as connection:
            before = await connection.scalar(text("SELECT coalesce(max(id), 0) FROM audit.events"))
        stages = []
        served = 0
        load_started = time.perf_counter()
        per_level = max(rounds * 10, 1000)
        for clients in LEVELS:
            if shutil.which("wrk"):
                stage = _wrk(base, tokens, patients, clients, seconds=15)
                served += stage["requests"] - stage["errors"]
            else:
                stage = await _drive(base, tokens, patients, clients, per_level)
                served += per_level - stage["errors"]
            stage["worker_rss_mib"] = [
                round(_rss_kib(pid) / 1024, 1) for pid in _workers(server.pid)
            ]
            stages.append(stage)
        load_seconds = time.perf_counter() - load_started
        async with engine.connect() as connection:
            entries = await connection.scalar(
                text(
                    "SELECT coalesce(sum(greatest(cardinality(record_ids), 1)), 0)"
                    " FROM audit.events WHERE category = 'ACCESS' AND id > :before"
                ),
                {"before": before},
            )
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
        await engine.dispose()
    return {
        "case": "one patient (2 PHI fields, audited) per request, phigate serve --workers 2,"
        f" {USERS} signed-in users",
        "stages": stages,
        "p99_target_ms_at_64_clients": 50,
        # Requests still in flight when a stage's clock stops complete (and are audited)
        # without being counted as served, so written may exceed expected, never trail it.
        "audit_entries_written": int(entries),
        "audit_entries_for_counted_requests": 2 * served,
        "audit_entries_missing": max(0, 2 * served - int(entries)),
        # Sustained through all stages: every entry durable before its response left.
        "audit_entries_per_second": round(int(entries) / load_seconds, 1),
    }
