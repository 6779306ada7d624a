from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from db.embedded import EmbeddedPostgres
from graph.cli import main
from tests.conftest import BLIND_INDEX_KEY, MASTER_KEY

ROOT = Path(__file__).resolve().parents[2]


def url(postgres: EmbeddedPostgres, database: str, *, admin: bool = False) -> str:
    target = postgres.admin_target(database) if admin else postgres.app_target(database)
    return target.url.render_as_string(hide_password=False)


@pytest.fixture
def external_database(
    monkeypatch: pytest.MonkeyPatch, postgres: EmbeddedPostgres, database: str
) -> str:
    """Point the CLI at a test database as an operator would, with DATABASE_URL."""
    monkeypatch.setenv("DATABASE_URL", url(postgres, database))
    monkeypatch.setenv("PHIGATE_MIGRATION_DATABASE_URL", url(postgres, database, admin=True))
    monkeypatch.setenv("PHIGATE_MASTER_KEY", MASTER_KEY)
    monkeypatch.setenv("PHIGATE_BLIND_INDEX_KEY", BLIND_INDEX_KEY)
    return database


def test_help_explains_every_command() -> None:
    script = Path(sys.executable).parent / "phigate"
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True)
    for command in ("serve", "migrate", "seed-demo", "export-schema"):
        assert command in done.stdout


def test_export_schema_check_passes_on_the_checked_in_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["export-schema", "--check"]) == 0


def test_export_schema_writes_and_check_detects_drift(tmp_path: Path) -> None:
    target = tmp_path / "schema.graphql"
    assert main(["export-schema", "--output", str(target)]) == 0
    assert target.read_text() == (ROOT / "schema.graphql").read_text()
    target.write_text(target.read_text() + "\n# drift\n")
    assert main(["export-schema", "--output", str(target), "--check"]) == 1


def test_seed_demo_is_idempotent(
    external_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["seed-demo", "--patients", "25"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(["seed-demo", "--patients", "25"]) == 0
    second = json.loads(capsys.readouterr().out)
    seeded_users = first.pop("demo_users")
    assert "DEMO ONLY" in seeded_users["warning"]
    assert all(len(account["totp_secret"]) == 32 for account in seeded_users["accounts"])
    demo_users = [account["username"] for account in seeded_users["accounts"]]
    assert demo_users == [
        f"demo.{name}"
        for name in ("clinician", "nurse", "billing", "compliance", "auditor", "analyst", "admin")
    ]
    second.pop("demo_users")
    assert (
        first
        == second
        == {
            "demo_data": "synthetic",
            "patients": 25,
            "baas": 4,
            "breaches": 2,
            "registered_operations": 5,
        }
    )


def test_seed_demo_is_refused_in_production(
    external_database: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PHIGATE_ENV", "production")
    assert main(["seed-demo"]) == 2
    assert "refused when PHIGATE_ENV=production" in capsys.readouterr().err


def test_migrate_then_serve_checks_the_schema_is_current(
    postgres: EmbeddedPostgres, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "t_cli_empty"
    postgres.drop_database(name)
    postgres.ensure_database(name)
    try:
        monkeypatch.setenv("DATABASE_URL", url(postgres, name, admin=True))
        assert main(["serve", "--port", "1"]) == 2
        assert "run `phigate migrate` first" in capsys.readouterr().err
        assert main(["migrate"]) == 0
        assert json.loads(capsys.readouterr().out)["migrated"] is True
        assert (
            int(
                postgres.psql(
                    "SELECT count(*) FROM pg_tables WHERE schemaname = 'phigate'", database=name
                )
            )
            > 0
        )
    finally:
        postgres.drop_database(name)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("PHIGATE_ENV", "staging", "PHIGATE_ENV must be one of development, production"),
        ("PHIGATE_MAX_PAGE_SIZE", "lots", "PHIGATE_MAX_PAGE_SIZE must be a whole number"),
        ("PHIGATE_DB_POOL_SIZE", "0", "PHIGATE_DB_POOL_SIZE must be between 1 and 200"),
        ("DATABASE_URL", "mysql://u:secret@h/db", "DATABASE_URL must point to PostgreSQL"),
        (
            "PHIGATE_AUDIT_RETENTION_DAYS",
            "365",
            "PHIGATE_AUDIT_RETENTION_DAYS must be between 2190 and 36500",
        ),
    ],
)
def test_bad_configuration_is_named_and_refused(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    message: str,
) -> None:
    monkeypatch.setenv(variable, value)
    assert main(["migrate"]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "secret" not in err


def test_secret_file_variant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from graph.settings import Settings, SettingsError

    secret = tmp_path / "database_url"
    secret.write_text("postgresql://app@db.example.test/phigate\n")
    assert (
        Settings.from_env({"DATABASE_URL_FILE": str(secret)}).database_url
        == "postgresql://app@db.example.test/phigate"
    )
    with pytest.raises(SettingsError, match="not both"):
        Settings.from_env({"DATABASE_URL_FILE": str(secret), "DATABASE_URL": "postgresql://x"})
    with pytest.raises(SettingsError, match="cannot be read"):
        Settings.from_env({"DATABASE_URL_FILE": str(tmp_path / "missing")})


@pytest.mark.parametrize(
    ("env", "host", "message"),
    [
        ({"PHIGATE_ENV": "production"}, "127.0.0.1", "needs DATABASE_URL"),
        (
            {
                "PHIGATE_ENV": "production",
                "DATABASE_URL": "postgresql://app@db.example.test/phigate",
            },
            "127.0.0.1",
            "verified TLS",
        ),
        (
            {
                "PHIGATE_ENV": "production",
                "DATABASE_URL": "postgresql://app@db.example.test/phigate?sslmode=require",
            },
            "127.0.0.1",
            "verified TLS",
        ),
        (
            {
                "PHIGATE_ENV": "production",
                "DATABASE_URL": "postgresql://app@db.example.test/phigate"
                "?sslmode=verify-full&sslrootcert={ca}",
            },
            "127.0.0.1",
            "serves only over TLS",
        ),
        ({"PHIGATE_TLS_CERT_FILE": "/tmp/cert.pem"}, "127.0.0.1", "go together"),
    ],
)
def test_serve_refuses_unsafe_setups(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict,
    host: str,
    message: str,
) -> None:
    from tests.tls import self_signed

    ca, _ = self_signed(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value.replace("{ca}", str(ca)))
    assert main(["serve", "--host", host, "--port", "1"]) == 2
    assert message in capsys.readouterr().err


def test_user_lifecycle_from_the_cli(
    external_database: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("a long synthetic passphrase\n"))
    assert main(["user", "add", "ops.nurse", "--role", "NURSE"]) == 0
    added = json.loads(capsys.readouterr().out)
    assert added["username"] == "ops.nurse" and added["role"] == "NURSE"
    assert added["otpauth_uri"].startswith("otpauth://totp/phigate:ops.nurse?secret=")
    assert "passphrase" not in json.dumps(added)

    monkeypatch.setattr("sys.stdin", io.StringIO("a long synthetic passphrase\n"))
    assert main(["user", "add", "ops.nurse", "--role", "NURSE"]) == 2
    assert "already taken" in capsys.readouterr().err

    monkeypatch.setattr("sys.stdin", io.StringIO("password1234\n"))
    assert main(["user", "add", "ops.weak", "--role", "NURSE"]) == 2
    assert "password is on the list of commonly used passwords" in capsys.readouterr().err

    assert main(["user", "unlock", "ops.nurse"]) == 0
    assert main(["user", "reset-mfa", "ops.nurse"]) == 0
    reset = json.loads(capsys.readouterr().out.split("\n}\n")[-2] + "\n}")
    assert reset["otpauth_uri"] != added["otpauth_uri"]
    assert main(["user", "disable", "ops.nurse"]) == 0
    assert main(["user", "unlock", "nobody.at.all"]) == 2
    capsys.readouterr()
    assert main(["user", "list"]) == 0
    [listed] = json.loads(capsys.readouterr().out)["users"]
    assert (listed["username"], listed["role"], listed["status"]) == (
        "ops.nurse",
        "NURSE",
        "DISABLED",
    )
    assert "otpauth" not in json.dumps(listed) and "hash" not in json.dumps(listed)


def test_client_management_from_the_cli(
    external_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["client", "add", "Synthetic lab interface", "--scopes", "patients:read"]) == 0
    added = json.loads(capsys.readouterr().out)
    client_id = added["client_id"]
    assert main(["client", "rotate-secret", client_id, "--overlap-minutes", "30"]) == 0
    rotated = json.loads(capsys.readouterr().out)
    assert rotated["client_secret"] not in (None, added["client_secret"])
    assert main(["client", "disable", client_id]) == 0
    assert main(["client", "list"]) == 0
    [listed] = json.loads(capsys.readouterr().out.split("\n}\n")[-2] + "\n}")["clients"]
    assert (listed["client_id"], listed["status"]) == (client_id, "DISABLED")
    assert listed["previous_secret_until"] is not None
    assert added["client_secret"] not in json.dumps(listed)
    assert main(["client", "enable", client_id]) == 0
    assert main(["client", "disable", "svc_nonexistent"]) == 2


def test_client_add_and_key_rotation_from_the_cli(
    external_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "client",
                "add",
                "Example Lab Interface",
                "--scopes",
                "patients:read",
                "--allow-ip",
                "10.0.0.0/8",
            ]
        )
        == 0
    )
    registered = json.loads(capsys.readouterr().out)
    assert registered["client_id"].startswith("svc_") and len(registered["client_secret"]) >= 40
    assert main(["client", "add", "Example Lab Interface", "--scopes", "patients:read"]) == 2
    capsys.readouterr()
    assert main(["keys", "rotate-signing"]) == 0
    first = json.loads(capsys.readouterr().out)["signing_kid"]
    assert main(["keys", "rotate-signing"]) == 0
    assert json.loads(capsys.readouterr().out)["signing_kid"] != first


def test_demo_code_only_for_demo_accounts_and_never_in_production(
    external_database: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo-code", "demo.analyst"]) == 0
    assert json.loads(capsys.readouterr().out)["totp"].isdigit()
    assert main(["demo-code", "ops.nurse"]) == 2
    monkeypatch.setenv("PHIGATE_ENV", "production")
    assert main(["demo-code", "demo.analyst"]) == 2


def test_policy_show_prints_the_matrix(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "show"]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split()[:4] == ["WHO", "PURPOSE", "READS", "WRITES"]
    assert "BILLING" in table and "scope patients:read" in table
    assert main(["policy", "show", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    billing = next(r for r in rows if r["who"] == "BILLING" and r["purpose"] == "PAYMENT")
    assert billing["reads"] == "FINANCIAL, IDENTIFIER, IDENTITY, PUBLIC"


def test_a_broken_policy_file_stops_phigate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "policy.toml"
    broken.write_text(
        (ROOT / "domain" / "policy.toml")
        .read_text()
        .replace('read.PAYMENT = ["IDENTITY"', 'read.PAYMENT = ["GOSSIP", "IDENTITY"')
    )
    monkeypatch.setenv("PHIGATE_POLICY_FILE", str(broken))
    assert main(["policy", "show"]) == 2
    assert "unknown data class(es) GOSSIP" in capsys.readouterr().err


def test_the_docs_show_the_policy_as_it_is() -> None:
    from domain.policy import bundled_policy
    from graph.cli.policy import render_table

    page = (ROOT / "docs" / "minimum-necessary.md").read_text()
    shown = page.split("<!-- policy-matrix:start -->\n```\n")[1].split(
        "\n```\n<!-- policy-matrix:end -->"
    )[0]
    assert shown == render_table(bundled_policy()), (
        "docs/minimum-necessary.md's matrix is stale: paste `phigate policy show`"
    )


def test_audit_retention_never_shorter_than_six_years(
    external_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "drop-expired", "--retention-days", "30", "--execute"]) == 2
    assert "--retention-days must be at least 2190" in capsys.readouterr().err


def test_kek_rotation_from_the_cli(
    external_database: str,
    postgres: EmbeddedPostgres,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from db.crypto import generate_key

    assert main(["seed-demo", "--patients", "3"]) == 0
    capsys.readouterr()
    # Same key version as the data: nothing to rotate to, and phigate says what to do.
    assert main(["keys", "rotate"]) == 2
    assert "add a new version to PHIGATE_MASTER_KEY" in capsys.readouterr().err
    monkeypatch.setenv("PHIGATE_MASTER_KEY", f"1:{MASTER_KEY},2:{generate_key()}")
    # A running gateway still configured with version 1 alone: re-wrapping now would take
    # it offline, so nothing is re-wrapped until it has been restarted with version 2.
    postgres.psql(
        "INSERT INTO phigate.gateway_instances (instance_id, host, pid, kek_versions)"
        " VALUES ('6f1b2c3d-0000-4000-8000-00000000a001', 'gw-1.example.test', 4242, '{1}')",
        database=external_database,
    )
    assert main(["keys", "rotate", "--wait-seconds", "0"]) == 2
    refused = capsys.readouterr().err
    assert "1 running gateway(s) do not hold key version 2 yet (gw-1.example.test:4242)" in refused
    assert "restart them with key version 2 in PHIGATE_MASTER_KEY" in refused
    postgres.psql(
        "UPDATE phigate.gateway_instances SET kek_versions = '{1,2}'"
        " WHERE host = 'gw-1.example.test'",
        database=external_database,
    )
    assert main(["keys", "rotate", "--batch", "2"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["key_version"] == 2
    assert report["rewrapped"]["patients.ssn_sealed"] == 3
    assert not any(report["remaining"].values())
    assert '"rewrapping": "patients.ssn_sealed", "done": 2' in captured.err


def test_retention_run_from_the_cli_reports_counts_only(
    external_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["seed-demo", "--patients", "3"]) == 0
    capsys.readouterr()
    assert main(["retention", "run", "--dry-run"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == {
        "retention_days": 2555,
        "dry_run": True,
        "examined": 0,
        "expired": 0,
        "deleted": 0,
        "kept_by_class": {},
    }
    assert main(["retention", "run", "--days", "30"]) == 2
    assert "--days must be at least 365" in capsys.readouterr().err


def test_report_from_the_cli(
    external_database: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["seed-demo", "--patients", "3"]) == 0
    capsys.readouterr()
    out = tmp_path / "report.json"
    assert main(["report", "--output", str(out)]) == 0
    document = json.loads(out.read_text())
    assert document["audit_chain"]["verified"] is True
    assert document["breaches"]["count"] >= 1 and document["accounts"]["without_mfa"] == 0
    assert main(["report", "--from", "not-a-date"]) == 2


def test_check_names_every_problem_of_a_production_setup(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for variable in ("DATABASE_URL", "PHIGATE_MASTER_KEY", "PHIGATE_BLIND_INDEX_KEY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("PHIGATE_ENV", "production")
    monkeypatch.setenv("PHIGATE_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("PHIGATE_TLS_CERT_FILE", "/nonexistent/cert.pem")
    monkeypatch.setenv(
        "PHIGATE_AUDIT_READ_DATABASE_URL", "postgresql://reader@replica.example.org/phigate"
    )
    assert main(["check", "--no-database"]) == 1
    report = json.loads(capsys.readouterr().out)
    problems = " | ".join(report["problems"])
    for expected in (
        "PHIGATE_MASTER_KEY",
        "PHIGATE_BLIND_INDEX_KEY",
        "PHIGATE_TLS_CERT_FILE names a file that does not exist",
        "DATABASE_URL is unset",
        "PHIGATE_AUDIT_READ_DATABASE_URL must use sslmode=verify-full",
        "TLS is off",
        "DEBUG",
    ):
        assert expected in problems, expected
    assert report["ok"] is False


def test_check_passes_a_sound_setup_and_sees_demo_accounts(
    external_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "ok": True,
        "environment": "development",
        "problems": [],
    }


def test_operations_register_validates_and_prints_hashes(
    external_database: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from graph.execution.persisted import digest

    good = tmp_path / "chart.graphql"
    good.write_text("query Chart($id: ID!) { patient(id: $id) { givenName } }\n")
    bad = tmp_path / "typo.graphql"
    bad.write_text("query { patiens { edges { node { id } } } }\n")
    assert main(["operations", "register", str(good)]) == 0
    [entry] = json.loads(capsys.readouterr().out)["registered"]
    assert entry == {
        "file": str(good),
        "sha256": digest(good.read_text()),
        # Who may run it, from the policy in force (phigate policy explain): whoever
        # reads IDENTITY data for some purpose.
        "allowed_for": {
            "Chart": [
                "role BILLING / PAYMENT",
                "role CLINICIAN / EMERGENCY",
                "role CLINICIAN / TREATMENT",
                "role COMPLIANCE_OFFICER / COMPLIANCE",
                "role NURSE / TREATMENT",
                "scope patients:read / PAYMENT",
                "scope patients:read / TREATMENT",
            ]
        },
    }
    assert main(["operations", "register", str(bad)]) == 2
    assert "patiens" in capsys.readouterr().err
    # A document nobody may run is refused, not registered.
    nobody = tmp_path / "nobody.graphql"
    nobody.write_text("query Everything { patients { edges { node { ssn } } } users { id } }\n")
    assert main(["operations", "register", str(nobody)]) == 2
    assert "no role or scope may run Everything" in capsys.readouterr().err
    assert main(["operations", "list"]) == 0
    listed = json.loads(capsys.readouterr().out)["operations"]
    assert [(o["sha256"], o["source"]) for o in listed] == [(entry["sha256"], "REGISTERED")]


def test_production_serve_runs_every_check_and_refuses_demo_accounts(
    external_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`phigate check` finds the demo accounts; `phigate serve` must refuse on the same
    finding, not start with them (their password is in the README)."""
    from tests.tls import self_signed

    assert main(["seed-demo", "--patients", "2"]) == 0  # demo patients and demo accounts
    capsys.readouterr()
    cert, key = self_signed(tmp_path)
    monkeypatch.setenv("PHIGATE_ENV", "production")
    assert main(["check"]) == 1
    assert "demo account(s) are active" in capsys.readouterr().out
    options = ["serve", "--tls-cert", str(cert), "--tls-key", str(key), "--port", "1"]
    assert main(options) == 2
    refused = capsys.readouterr().err
    assert "refusing to serve" in refused and "demo account(s) are active" in refused


@pytest.mark.parametrize("command", [["migrate"], ["report"], ["audit", "verify"], ["serve"]])
def test_an_unreachable_database_is_one_line_not_a_traceback(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.conftest import BLIND_INDEX_KEY, MASTER_KEY

    monkeypatch.setenv("DATABASE_URL", "postgresql://phigate_app:synthetic@127.0.0.1:1/phigate")
    monkeypatch.setenv("PHIGATE_MASTER_KEY", MASTER_KEY)
    monkeypatch.setenv("PHIGATE_BLIND_INDEX_KEY", BLIND_INDEX_KEY)
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "could not be reached (ConnectionRefusedError)" in err and "DATABASE_URL" in err
    assert "synthetic" not in err  # never the password


@pytest.mark.parametrize("port", ["99999", "-5", "0", "http"])
def test_serve_refuses_a_port_that_is_not_one(
    port: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--port", port])
    assert exited.value.code == 2
    assert "must be a port number, 1 to 65535" in capsys.readouterr().err


def test_serve_warns_when_its_workers_may_hold_more_connections_than_the_database_allows(
    external_database: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each worker keeps up to pool + overflow connections: a gateway whose workers may
    hold more than the server's limit would answer 503 under load. On a database of its
    own it says so with the figures and what to change; it does not refuse, since behind
    PgBouncer the server's limit is not the gateway's."""
    import uvicorn

    served: list[int] = []
    monkeypatch.setattr(uvicorn, "run", lambda *_, **options: served.append(options["workers"]))
    assert main(["serve", "--workers", "2", "--port", "1"]) == 0
    assert "warning" not in capsys.readouterr().err  # 2 x (10 + 5) fit
    monkeypatch.setenv("PHIGATE_DB_POOL_SIZE", "200")
    assert main(["serve", "--workers", "4", "--port", "1"]) == 0
    warned = capsys.readouterr().err
    assert "may hold 820 database connections" in warned
    assert "4 worker(s) x (PHIGATE_DB_POOL_SIZE 200 + PHIGATE_DB_MAX_OVERFLOW 5)" in warned
    assert "max_connections" in warned and "PgBouncer" in warned
    assert served == [2, 4]
