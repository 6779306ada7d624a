"""phigate against a raw baseline over HTTP: the same patients (id and name) for 1, 10,
100 and 1000 rows, from `phigate serve` (authenticated, purpose-checked, row-level
security, audited) and from a bare Starlette route doing one asyncpg query and
json.dumps. One request at a time, interleaved; medians and their ratio."""

from __future__ import annotations

import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from domain.roles import Role
from tests.bench.harness import Database, bench_identity, raw_env, server_env
from tests.e2e.test_serve import free_port, wait_ready
from tests.identity import issue_token

SIZES = (1, 10, 100, 1000)
QUERY = "query($n: Int) { patients(first: $n) { edges { node { id givenName familyName } } } }"


def _start(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not start")
        time.sleep(0.3)


async def run(db: Database, *, rounds: int) -> dict[str, Any]:
    async with bench_identity(db) as identity:
        token = await issue_token(identity, Role.COMPLIANCE_OFFICER)
    phigate_port, raw_port = free_port(), free_port()
    env = server_env(db, PHIGATE_MAX_PAGE_SIZE="1000", PHIGATE_MAX_COST="100000", **raw_env(db))
    bin_dir = Path(sys.executable).parent
    phigate = _start([str(bin_dir / "phigate"), "serve", "--port", str(phigate_port)], env)
    raw = _start(
        [str(bin_dir / "uvicorn"), "tests.bench.raw_app:app", "--port", str(raw_port),
         "--log-level", "warning"],
        env,
    )  # fmt: skip
    results: dict[str, Any] = {}
    try:
        wait_ready(f"http://127.0.0.1:{phigate_port}", phigate)  # type: ignore[arg-type]
        _wait(f"http://127.0.0.1:{raw_port}/patients", raw)
        headers = {"Authorization": f"Bearer {token}", "X-Purpose-Of-Use": "COMPLIANCE"}
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{phigate_port}", timeout=30) as gw,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{raw_port}", timeout=30) as bare,
        ):
            for size in SIZES:
                timings: dict[str, list[float]] = {"phigate": [], "raw": []}
                for attempt in range(max(rounds // 4, 20) + 5):
                    for name in ("phigate", "raw") if attempt % 2 else ("raw", "phigate"):
                        started = time.perf_counter()
                        if name == "phigate":
                            response = await gw.post(
                                "/graphql",
                                json={"query": QUERY, "variables": {"n": size}},
                                headers=headers,
                            )
                            edges = response.json()["data"]["patients"]["edges"]
                            assert len(edges) == size
                        else:
                            response = await bare.get("/patients", params={"first": size})
                            assert len(response.json()["data"]["patients"]) == size
                        if attempt >= 5:  # warm-up
                            timings[name].append((time.perf_counter() - started) * 1000)
                gateway_ms = statistics.median(timings["phigate"])
                raw_ms = statistics.median(timings["raw"])
                results[str(size)] = {
                    "phigate_ms": round(gateway_ms, 2),
                    "raw_ms": round(raw_ms, 2),
                    "ratio": round(gateway_ms / raw_ms, 2),
                }
    finally:
        for process in (phigate, raw):
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)
    return {
        "case": "patients by HTTP, one request at a time: phigate vs asyncpg + json.dumps",
        "rows": results,
    }
