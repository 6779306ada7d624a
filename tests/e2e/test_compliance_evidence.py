"""`phigate compliance evidence`, as an operator runs it before go-live: against a sound
deployment served over TLS every application item passes; against a deliberately broken
one each broken item fails, is named, and nothing else does."""

from __future__ import annotations

import json
import signal
import ssl
import time
from pathlib import Path

import httpx
import pytest

from db.embedded import EmbeddedPostgres
from graph.cli import main
from tests.e2e.test_cli import external_database  # noqa: F401 (a fixture)
from tests.e2e.test_serve import free_port, gateway_env, start_gateway

APPLICATION_ITEMS = {f"C{n}" for n in range(1, 19)} - {"C16"} | {f"I{n}" for n in range(1, 13)} - {
    "I11"
}


def wait_ready_over_tls(base: str, cert: Path, process) -> None:
    trust = ssl.create_default_context(cafile=str(cert))
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, "phigate serve exited early"
        try:
            if httpx.get(f"{base}/ready", verify=trust, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError("phigate serve did not become ready")


def evidence(capsys: pytest.CaptureFixture[str], *options: str) -> tuple[int, dict[str, dict]]:
    capsys.readouterr()
    status = main(["compliance", "evidence", "--format", "json", *options])
    return status, {verdict["item"]: verdict for verdict in json.loads(capsys.readouterr().out)}


def test_a_sound_deployment_passes_every_application_item(
    external_database: str,  # noqa: F811
    postgres: EmbeddedPostgres,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.tls import self_signed

    cert, key = self_signed(tmp_path)
    monkeypatch.setenv("PHIGATE_TLS_CERT_FILE", str(cert))
    monkeypatch.setenv("PHIGATE_TLS_KEY_FILE", str(key))
    assert main(["seed-demo", "--patients", "5"]) == 0
    port = free_port()
    gateway = start_gateway(
        port,
        gateway_env(postgres, external_database),
        tmp_path,
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
    )
    base = f"https://127.0.0.1:{port}"
    try:
        wait_ready_over_tls(base, cert, gateway)
        status, verdicts = evidence(capsys, "--url", base, "--ca-file", str(cert))
    finally:
        gateway.send_signal(signal.SIGINT)
        gateway.communicate(timeout=60)
    failed = {item: v["problems"] for item, v in verdicts.items() if v["status"] != "PASS"}
    assert set(verdicts) >= APPLICATION_ITEMS | {"C16", "I11"}
    assert {item for item in failed if item in APPLICATION_ITEMS} == set(), failed
    assert {verdicts[item]["status"] for item in ("C16", "I11")} == {"OPERATOR"}
    assert status == 0
    # What was checked is on the page, not only the verdict.
    assert any("401" in line for line in verdicts["C13"]["checked"])
    assert any("verifies" in line for line in verdicts["C7"]["checked"])


def test_a_broken_deployment_fails_exactly_the_broken_items(
    external_database: str,  # noqa: F811
    postgres: EmbeddedPostgres,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    db = external_database
    assert main(["seed-demo", "--patients", "3"]) == 0
    status, before = evidence(capsys)
    assert status == 1 and {i for i, v in before.items() if v["status"] == "FAIL"} == {"C5"}
    # TLS on from here (C5 passes), and each of these breaks one item.
    monkeypatch.setenv("PHIGATE_BEHIND_PROXY", "true")
    monkeypatch.setenv("PHIGATE_SESSION_IDLE_MINUTES", "240")  # C3
    monkeypatch.setenv("PHIGATE_LOG_LEVEL", "DEBUG")  # C9
    monkeypatch.setenv("PHIGATE_RETENTION_INTERVAL_SECONDS", "0")  # C12
    monkeypatch.setenv("PHIGATE_LOCKOUT_THRESHOLD", "50")  # I1
    next_month = postgres.psql(
        "SELECT 'audit.events_'"
        " || to_char((now() AT TIME ZONE 'UTC') + interval '1 month', 'YYYY_MM')",
        database=db,
    ).strip()
    postgres.psql(
        f"DROP TABLE {next_month}",  # C7
        "GRANT UPDATE ON audit.events TO phigate_app",  # C8
        "ALTER TABLE phigate.baas ADD COLUMN deleted_at timestamptz",  # C10
        "ALTER TABLE phigate.consents DISABLE ROW LEVEL SECURITY",  # C17
        "GRANT DELETE ON phigate.care_team_changes TO phigate_app",  # I2
        "UPDATE phigate.row_scope_ceilings SET row_scope = 'ALL' WHERE grantee = 'role:ANALYST'",
        "ALTER TABLE phigate.baas ADD COLUMN given_name text",  # I7
        database=db,
    )
    try:
        postgres.psql("ALTER ROLE phigate_app CREATEDB")  # C18 (cluster-wide: undone below)
        status, after = evidence(capsys)
    finally:
        postgres.psql("ALTER ROLE phigate_app NOCREATEDB")
    failed = {item for item, verdict in after.items() if verdict["status"] == "FAIL"}
    assert status == 1
    assert failed == {"C3", "C7", "C8", "C9", "C10", "C12", "C17", "C18", "I1", "I2", "I7", "I8"}
    # Each failure names what is wrong.
    assert after["C17"]["problems"] == [
        "consents: row-level security OFF, 1 policies, owner phigate_owner"
    ]
    assert after["C10"]["problems"] == ["soft-delete columns: ['baas.deleted_at']"]
    assert after["C12"]["problems"] == [
        "PHIGATE_RETENTION_INTERVAL_SECONDS is 0: nothing deletes expired records"
    ]
    assert any("phigate.baas.given_name" in p for p in after["I7"]["problems"])


def test_the_evidence_page_maps_every_item_to_tests_that_exist() -> None:
    import re

    from graph.cli.evidence import ITEMS

    root = Path(__file__).resolve().parents[2]
    page = (root / "docs" / "compliance-evidence.md").read_text()
    rows = [line for line in page.splitlines() if re.match(r"\| [CI]\d+ ", line)]
    items = [row.split()[1] for row in rows]
    expected = [f"C{n}" for n in range(1, 19)] + [f"I{n}" for n in range(1, 13)]
    assert items == expected
    assert [code for code, *_ in ITEMS] == expected  # the command covers the same items
    for row in rows:
        for path, _, test in re.findall(r"`(tests/[\w/]+\.py)(::(test_\w+)…)?`", row):
            assert (root / path).is_file(), path
            if test:
                assert f"def {test}" in (root / path).read_text(), f"{path}::{test}"
