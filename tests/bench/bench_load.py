"""Throughput and tail latency over real HTTP: `phigate serve --workers 2` on the
benchmark database at 16, 64 and 256 concurrent clients (wrk when installed, else a
bounded asyncio/httpx client; loopback only), each stage followed by the same load on
the raw baseline (a bare Starlette route doing one asyncpg query and json.dumps, also
two uvicorn workers): what the same machine serves with no gateway at all. Each phigate
request reads one patient's name (two PHI fields, so two audit entries). Reports
requests/s, p50/p99 and errors for both, audit entries written against those expected,
and worker memory sampled over 10,000 further requests. The load generator shares the
machine's cores with the server: figures are pessimistic on a 2-core box."""

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from db.demo import demo_id
from db.engine import create_engine
from domain.roles import Role
from tests.bench.bench_baseline import _start, _wait
from tests.bench.harness import Database, bench_identity, raw_env, server_env
from tests.e2e.test_serve import free_port, wait_ready
from tests.identity import issue_token

QUERY = "query One($id: ID!) { patient(id: $id) { id givenName familyName } }"
LEVELS = (16, 64, 256)
USERS = 64
MEMORY_REQUESTS = 10_000


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _workers(pid: int) -> list[int]:
    """uvicorn's worker processes (not multiprocessing's resource tracker)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                children.append(int(child))
    return children


def _worker_rss_mib(server: subprocess.Popen[bytes]) -> list[float]:
    return [round(_rss_kib(pid) / 1024, 1) for pid in _workers(server.pid)]


Send = Callable[[httpx.AsyncClient, int, random.Random], Any]


def _graphql(tokens: list[str], patients: int) -> Send:
    async def send(http: httpx.AsyncClient, number: int, rng: random.Random) -> bool:
        # Each client is a different signed-in user, as in a clinic.
        headers = {
            "Authorization": f"Bearer {tokens[number % len(tokens)]}",
            "X-Purpose-Of-Use": "COMPLIANCE",
        }
        patient = str(demo_id("patient", rng.randrange(1, patients + 1)))
        response = await http.post(
            "/graphql", json={"query": QUERY, "variables": {"id": patient}}, headers=headers
        )
        return response.status_code == 200 and "errors" not in response.json()

    return send


async def _raw(http: httpx.AsyncClient, _number: int, _rng: random.Random) -> bool:
    response = await http.get("/patients", params={"first": 1})
    return response.status_code == 200 and len(response.json()["data"]["patients"]) == 1


async def _drive(base: str, send: Send, clients: int, requests: int) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    queue = list(range(requests))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as http:

        async def client(number: int) -> None:
            nonlocal errors
            rng = random.Random()
            while queue:
                queue.pop()
                started = time.perf_counter()
                try:
                    ok = await send(http, number, rng)
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
        "generator": "httpx",
        "requests": requests,
        "requests_per_second": round(requests / elapsed, 1),
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1], 2),
        "errors": errors,
    }


WRK_DONE = r"""
local threads = {}
setup = function(thread) table.insert(threads, thread) end
init = function(args) failed = 0 end
-- wrk counts only transport errors and non-2xx statuses; a GraphQL error is a 200.
response = function(status, headers, body)
  if status ~= 200 or string.find(body, '"errors"', 1, true) then failed = failed + 1 end
end
done = function(summary, latency, requests)
  local e = summary.errors
  local failed = 0
  for _, thread in ipairs(threads) do failed = failed + thread:get("failed") end
  io.write(string.format("RESULT %d %d %d %.3f %.3f\n", summary.requests,
    failed + e.timeout + e.read + e.connect + e.write, summary.duration,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
  io.write(string.format("ERRORS %d %d %d %d %d %d\n", failed, e.timeout, e.read, e.connect,
    e.write, e.status))
end
"""
WRK_GRAPHQL = r"""
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
"""
WRK_RAW = r"""
request = function()
  return wrk.format("GET", "/patients?first=1")
end
"""


def _wrk_script(tokens: list[str], patients: int) -> tuple[Path, Path]:
    """(phigate script, raw baseline script)."""
    ids = ", ".join(f'"{demo_id("patient", n)}"' for n in range(1, min(patients, 2000) + 1))
    folder = Path(tempfile.mkdtemp())
    graphql, raw = folder / "graphql.lua", folder / "raw.lua"
    graphql.write_text(
        WRK_GRAPHQL.replace("@IDS@", ids)
        .replace("@TOKENS@", ", ".join(f'"{t}"' for t in tokens))
        .replace("@QUERY@", QUERY.replace('"', '\\"'))
        + WRK_DONE
    )
    raw.write_text(WRK_RAW + WRK_DONE)
    return graphql, raw


def _wrk(base: str, script: Path, clients: int, seconds: int) -> dict[str, Any]:
    """wrk (C, light on the CPU the server needs) when installed: `apt install wrk`."""
    command = ["wrk", "-t2", f"-c{clients}", f"-d{seconds}s", "--timeout", "10s"]
    out = subprocess.run(
        [*command, "-s", str(script), base], capture_output=True, text=True, check=True
    ).stdout
    line = next(line for line in out.splitlines() if line.startswith("RESULT"))
    _, requests, errors, duration_us, p50, p99 = line.split()
    kinds = next(line for line in out.splitlines() if line.startswith("ERRORS")).split()[1:]
    return {
        "clients": clients,
        "generator": "wrk",
        "requests": int(requests),
        "requests_per_second": round(int(requests) / (int(duration_us) / 1e6), 1),
        "p50_ms": float(p50),
        "p99_ms": float(p99),
        "errors": int(errors),
        # What the errors were: answers that were not a 200 without GraphQL errors, then
        # wrk's own counts (timeouts, read, connect and write errors, non-2xx statuses; a
        # non-2xx answer is counted in both "failed" and "status").
        "error_kinds": dict(
            zip(
                ("failed", "timeout", "read", "connect", "write", "status"),
                map(int, kinds),
                strict=True,
            )
        ),
    }


class _Load:
    """One way to put load on a server: wrk with a script, or the httpx client."""

    def __init__(self, base: str, script: Path, send: Send, per_stage: int) -> None:
        self.base, self.script, self.send, self.per_stage = base, script, send, per_stage

    async def stage(self, clients: int, *, seconds: int = 15) -> dict[str, Any]:
        if shutil.which("wrk"):
            return _wrk(self.base, self.script, clients, seconds)
        return await _drive(self.base, self.send, clients, self.per_stage)


async def run(db: Database, *, rounds: int) -> dict[str, Any]:
    patients = db.patients  # every request names a patient that exists
    async with bench_identity(db) as identity:
        tokens = [await issue_token(identity, Role.COMPLIANCE_OFFICER) for _ in range(USERS)]
    port, raw_port = free_port(), free_port()
    env = server_env(db, PHIGATE_DB_POOL_SIZE="20", **raw_env(db))
    bin_dir = Path(sys.executable).parent
    server = _start([str(bin_dir / "phigate"), "serve", "--workers", "2", "--port", str(port)], env)
    raw_server = _start(
        [str(bin_dir / "uvicorn"), "tests.bench.raw_app:app", "--workers", "2",
         "--port", str(raw_port), "--log-level", "warning"],
        env,
    )  # fmt: skip
    base, raw_base = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{raw_port}"
    graphql_script, raw_script = _wrk_script(tokens, patients)
    per_stage = max(rounds * 10, 1000)
    gateway = _Load(base, graphql_script, _graphql(tokens, patients), per_stage)
    raw = _Load(raw_base, raw_script, _raw, per_stage)
    engine = create_engine(db.admin, pool_size=1, max_overflow=0)
    try:
        wait_ready(base, server)  # type: ignore[arg-type]
        _wait(f"{raw_base}/patients", raw_server)
        # Warm-up: connections, caches.
        await _drive(base, _graphql(tokens, patients), 16, 200)
        await _drive(raw_base, _raw, 16, 200)
        before = await _last_entry(engine)
        stages = []
        served = 0
        for clients in LEVELS:
            first = await _last_entry(engine)
            stage = await gateway.stage(clients)
            served += stage["requests"] - stage["errors"]
            # Entries the stage's requests wrote (durable before each response left).
            stage["audit_entries_written"] = await _entries_after(engine, first)
            # The sequencer seals what the stage wrote: let it finish, so the baseline
            # does not share the machine with it.
            await _sealed(engine, first)
            baseline = await raw.stage(clients)
            stages.append(
                {
                    "clients": clients,
                    "phigate": stage,
                    "raw_baseline": baseline,
                    "p99_ratio": round(stage["p99_ms"] / baseline["p99_ms"], 2),
                    "throughput_ratio": round(
                        baseline["requests_per_second"] / stage["requests_per_second"], 2
                    ),
                }
            )
        memory = await _memory(gateway, server)
        served += memory["requests"] - memory["errors"]
        entries = await _entries_after(engine, before)
    finally:
        for process in (server, raw_server):
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)
        await engine.dispose()
    return {
        "case": "one patient (2 PHI fields, audited) per request, phigate serve --workers 2,"
        f" {USERS} signed-in users; raw baseline: one asyncpg row, 2 uvicorn workers",
        "stages": stages,
        "p99_target_ms_at_64_clients": 50,
        "memory": memory,
        # Requests still in flight when a stage's clock stops complete (and are audited)
        # without being counted as served, so written may exceed expected, never trail it.
        "audit_entries_written": entries,
        "audit_entries_for_counted_requests": 2 * served,
        "audit_entries_missing": max(0, 2 * served - entries),
        # Sustained through the stages: every entry durable before its response left.
        "audit_entries_per_second": _entries_per_second(stages),
    }


def _entries_per_second(stages: list[dict[str, Any]]) -> float:
    """Entries written during the gateway's stages over those stages' duration."""
    served = [s["phigate"] for s in stages]
    seconds = sum(s["requests"] / s["requests_per_second"] for s in served)
    return round(sum(s["audit_entries_written"] for s in served) / seconds, 1)


async def _last_entry(engine: Any) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(text("SELECT coalesce(max(id), 0) FROM audit.events")))


async def _entries_after(engine: Any, after: int) -> int:
    """Logical PHI-access entries (one per record and field) written after an id."""
    async with engine.connect() as connection:
        return int(
            await connection.scalar(
                text(
                    "SELECT coalesce(sum(greatest(cardinality(record_ids), 1)), 0)"
                    " FROM audit.events WHERE category = 'ACCESS' AND id > :after"
                ),
                {"after": after},
            )
        )


async def _sealed(engine: Any, after: int, *, wait_seconds: float = 30) -> None:
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        async with engine.connect() as connection:
            unsealed = await connection.scalar(
                text(
                    "SELECT count(*) FROM audit.events e WHERE e.id > :after AND NOT EXISTS"
                    " (SELECT 1 FROM audit.chain c WHERE c.event_id = e.id)"
                ),
                {"after": after},
            )
        if not unsealed:
            return
        await asyncio.sleep(0.5)


async def _memory(gateway: _Load, server: subprocess.Popen[bytes]) -> dict[str, Any]:
    """Worker RSS sampled while MEMORY_REQUESTS more requests are served at 64 clients:
    a leak shows as growth between the middle and the last sample."""
    samples = [(0, _worker_rss_mib(server))]
    requests = errors = 0
    while requests < MEMORY_REQUESTS:
        chunk = await gateway.stage(64, seconds=5)
        requests += chunk["requests"]
        errors += chunk["errors"]
        samples.append((requests, _worker_rss_mib(server)))
    # The sample nearest the half-way request count, against the last.
    middle = min(samples, key=lambda sample: abs(sample[0] - requests / 2))[1]
    last = samples[-1][1]
    return {
        "requests": requests,
        "errors": errors,
        "worker_rss_mib_samples": {str(at): rss for at, rss in samples},
        "peak_worker_rss_mib": max(max(rss) for _, rss in samples),
        "growth_second_half_mib": round(max(b - a for a, b in zip(middle, last, strict=True)), 1),
    }
