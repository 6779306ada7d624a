"""The `phigate` command."""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import os
import signal
import socket
import ssl
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from db.demo import DEMO_PATIENTS
from db.embedded import APP_DATABASE, EmbeddedDatabaseError, EmbeddedPostgres, start_embedded
from db.engine import DatabaseTarget, DatabaseUrlError, create_engine, parse_database_url
from db.errors import ConstraintViolation
from db.migrate import current_revision, head_revision, upgrade
from db.visibility import OwnerConnectionRequired
from domain.policy import PolicyError
from graph.cli import audit as cli_audit
from graph.cli import console as cli_console
from graph.cli import identity as cli_identity
from graph.cli import policy as cli_policy
from graph.http.serving import DeadlineProtocol, tls_context
from graph.keys import configured_field_cipher, field_cipher
from graph.logs import configure_logging
from graph.settings import Settings, SettingsError


class CommandError(Exception):
    """A refusal with a message for the operator; exits 2."""


@dataclass(frozen=True, slots=True)
class Database:
    app: DatabaseTarget
    admin: DatabaseTarget
    embedded: EmbeddedPostgres | None


def open_database(settings: Settings) -> Database:
    if settings.uses_embedded_database:
        embedded = start_embedded(settings.data_dir)
        embedded.ensure_database(APP_DATABASE)
        return Database(app=embedded.app_target(), admin=embedded.admin_target(), embedded=embedded)
    assert settings.database_url is not None
    app = parse_database_url(settings.database_url)
    admin = parse_database_url(settings.migration_database_url or settings.database_url)
    return Database(app=app, admin=admin, embedded=None)


async def _revision(target: DatabaseTarget) -> str | None:
    engine = create_engine(target, pool_size=1, max_overflow=0, application_name="phigate-cli")
    try:
        return await current_revision(engine)
    finally:
        await engine.dispose()


def _migrate(settings: Settings, database: Database) -> None:
    """Migrate with the keys at hand: a migration that encrypts existing values needs
    them, and says so if they are missing."""
    try:
        # The embedded database is development's: its key files may be created here.
        # Elsewhere only keys that are configured (or already on disk) are used.
        cipher = (
            field_cipher(settings)
            if database.embedded is not None
            else configured_field_cipher(settings)
        )
    except SettingsError:
        cipher = None
    upgrade(database.admin, cipher=cipher)


def _emit(payload: dict[str, object]) -> None:
    print(json.dumps(payload, indent=2, default=str))


def cmd_migrate(settings: Settings, _: argparse.Namespace) -> int:
    database = open_database(settings)
    _migrate(settings, database)
    _emit({"migrated": True, "revision": head_revision()})
    return 0


def _seed(settings: Settings, database: Database, patients: int) -> dict[str, object]:
    if settings.is_production:
        raise CommandError(
            "seed-demo is refused when PHIGATE_ENV=production: demo data does not belong there"
        )
    from db.demo import seed_demo
    from db.demo_operations import register_demo_operations

    async def run() -> dict[str, object]:
        # Every patient's record: the schema owner's connection (row-level security
        # gives the application role no rows without a caller's session).
        engine = create_engine(
            database.admin, pool_size=1, max_overflow=0, application_name="phigate-seed"
        )
        try:
            async with engine.begin() as connection:
                report = await seed_demo(
                    connection, cipher=field_cipher(settings), patients=patients
                )
            registered = await register_demo_operations(engine)
        finally:
            await engine.dispose()
        return {
            "demo_data": "synthetic",
            "patients": report.patients,
            "baas": report.baas,
            "breaches": report.breaches,
            "registered_operations": registered,
        }

    seeded = asyncio.run(run())
    from db.demo import DEMO_PASSWORD

    seeded["demo_users"] = {
        "warning": "DEMO ONLY: synthetic accounts, published credentials; refused in production",
        "password": DEMO_PASSWORD,
        "totp": "phigate demo-code USERNAME prints the current code",
        "accounts": cli_identity.seed_demo_users(settings, database.admin),
    }
    return seeded


def cmd_seed_demo(settings: Settings, args: argparse.Namespace) -> int:
    database = open_database(settings)
    if database.embedded is not None:
        _migrate(settings, database)
    _emit(_seed(settings, database, args.patients))
    return 0


DEFAULT_CONCURRENCY = 1000


def _at_least_one(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError("must be a whole number of at least 1")
    return number


def _port(raw: str) -> int:
    try:
        number = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a port number, 1 to 65535") from None
    if not 1 <= number <= 65535:
        raise argparse.ArgumentTypeError("must be a port number, 1 to 65535")
    return number


def _unreachable(exc: BaseException) -> str | None:
    """One line an operator can act on when the database cannot be used, instead of a
    traceback: what could not be reached and what to check. Never the URL's password."""
    import asyncpg

    # Refusals at connection time; an error in a statement is not one of these.
    refused = (
        asyncpg.InvalidAuthorizationSpecificationError,  # wrong password, no such role
        asyncpg.InvalidCatalogNameError,  # no such database
        asyncpg.CannotConnectNowError,
        asyncpg.TooManyConnectionsError,
        asyncpg.ConnectionDoesNotExistError,
    )
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionError | TimeoutError | socket.gaierror) or (
            isinstance(seen, OSError) and seen.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH)
        ):
            kind = type(seen).__name__
            return (
                f"the database could not be reached ({kind}): check DATABASE_URL (host, port,"
                " TLS settings) and that PostgreSQL is running and accepts connections from here"
            )
        if isinstance(seen, ssl.SSLError):
            return (
                f"the database's TLS could not be verified ({type(seen).__name__}): check"
                " sslrootcert in DATABASE_URL names the CA that signed the server's certificate,"
                " and that the host name in the URL is one the certificate names"
            )
        if isinstance(seen, refused):
            return (
                f"the database refused the connection ({type(seen).__name__}): check"
                " DATABASE_URL (user, password, database name, sslmode) and the server's logs"
            )
        orig = getattr(seen, "orig", None)
        if isinstance(orig, BaseException) and orig is not seen and isinstance(orig, refused):
            seen = orig
            continue
        seen = seen.__cause__ or seen.__context__
    return None


def _refuse_unsafe_serving(settings: Settings, args: argparse.Namespace | None = None) -> None:
    if args is not None and bool(args.tls_cert) != bool(args.tls_key):
        raise CommandError("--tls-cert and --tls-key go together")
    if not settings.is_production:
        return
    if settings.uses_embedded_database:
        raise CommandError(
            "PHIGATE_ENV=production needs DATABASE_URL (a managed PostgreSQL); the embedded "
            "database is for development and demos"
        )
    for variable, raw in (
        ("DATABASE_URL", settings.database_url),
        ("PHIGATE_AUDIT_READ_DATABASE_URL", settings.audit_read_database_url),
    ):
        if raw is None:
            continue
        target = parse_database_url(raw, variable)
        if not target.is_local and not target.verifies_server:
            raise CommandError(
                "PHIGATE_ENV=production refuses a remote database without verified TLS: add "
                f"sslmode=verify-full&sslrootcert=/path/to/ca.pem to {variable}"
            )
    if args is not None and not args.tls_cert and not args.behind_proxy:
        raise CommandError(
            "PHIGATE_ENV=production serves only over TLS: give --tls-cert and --tls-key, or"
            " --behind-proxy (with --trusted-proxies) when a load balancer terminates TLS"
        )


def cmd_check(settings: Settings, args: argparse.Namespace) -> int:
    from graph.cli.checks import configuration_problems, database_problems

    problems = configuration_problems(settings)
    if not args.no_database:
        problems += asyncio.run(database_problems(settings))
    _emit({"ok": not problems, "environment": settings.environment.value, "problems": problems})
    return 1 if problems else 0


def cmd_compliance_evidence(settings: Settings, args: argparse.Namespace) -> int:
    from graph.cli import evidence

    database = open_database(settings)

    async def run() -> list[evidence.Verdict]:
        engine = create_engine(
            database.app, pool_size=3, max_overflow=0, application_name="phigate-evidence"
        )
        try:
            return await evidence.gather(settings, engine, url=args.url, ca_file=args.ca_file)
        finally:
            await engine.dispose()

    verdicts = asyncio.run(run())
    page = evidence.to_json(verdicts) if args.format == "json" else evidence.render(verdicts)
    print(page)
    if args.output:
        Path(args.output).write_text(page + "\n", encoding="utf-8")
    return 1 if any(verdict.status == evidence.FAIL for verdict in verdicts) else 0


# Connections the embedded database keeps free beside a served gateway's pools: the
# CLI's commands, a migration, an operator's psql.
CLI_CONNECTIONS = 10


def _exit_on_sigterm(_signal: int, _frame: Any) -> None:
    raise SystemExit(0)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    _refuse_unsafe_serving(settings, args)
    if settings.is_production:
        from graph.cli.checks import configuration_problems, database_problems

        serving = {
            **os.environ,
            "PHIGATE_TLS_CERT_FILE": args.tls_cert or "",
            "PHIGATE_TLS_KEY_FILE": args.tls_key or "",
            "PHIGATE_BEHIND_PROXY": "true" if args.behind_proxy else "",
        }
        # Everything `phigate check` checks, the database included (demo accounts, the
        # schema's revision, row scopes the database does not allow).
        problems = configuration_problems(settings, serving)
        problems += asyncio.run(database_problems(settings))
        if args.demo:
            problems.append("--demo creates demo accounts, which production never has")
        if problems:
            raise CommandError("refusing to serve: " + "; ".join(problems))
    database = open_database(settings)
    if database.embedded is not None:
        # Ours to size: every worker's pool, and room for the CLI and the console's
        # operators beside it.
        try:
            database.embedded.allow_connections(
                settings.connections(args.workers) + CLI_CONNECTIONS
            )
        except EmbeddedDatabaseError as exc:
            print(f"phigate: warning: {exc}", file=sys.stderr)
        _migrate(settings, database)  # zero-setup: the embedded database is always current
    elif asyncio.run(_revision(database.app)) != head_revision():
        raise CommandError("the database schema is not current: run `phigate migrate` first")
    else:
        from graph.cli.checks import connection_shortfall

        try:
            shortfall = asyncio.run(connection_shortfall(database.app, settings, args.workers))
        except Exception as exc:  # a warning's check does not stop the gateway
            shortfall = f"the database's connection limit could not be read ({type(exc).__name__})"
        if shortfall is not None:
            print(f"phigate: warning: {shortfall}", file=sys.stderr)
    if args.demo:
        _emit(_seed(settings, database, args.demo_patients))
    origin = f"{'https' if args.tls_cert else 'http'}://{args.host}:{args.port}"
    _emit(
        {
            "graphql": f"{origin}/graphql",
            "console": f"{origin}/console",
            "database": "embedded" if database.embedded else "DATABASE_URL",
        }
    )
    # uvicorn shuts down gracefully on SIGTERM (stops accepting, finishes in-flight
    # requests, runs the app's shutdown: the sequencer's last pass), then re-raises the
    # signal. Python's default for SIGTERM ends the process on the spot, skipping the
    # exit handlers that stop the embedded PostgreSQL; as SystemExit they run.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    uvicorn.run(
        "graph.http.app:create_app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        # Past this many open connections or requests in a worker, new requests get an
        # immediate 503 instead of joining a queue whose wait would be the outage.
        limit_concurrency=args.limit_concurrency,
        # The headers' deadline (PHIGATE_HEADER_TIMEOUT_SECONDS); the body's is the app's.
        http=DeadlineProtocol,
        log_config=None,
        access_log=False,
        server_header=False,
        # Client addresses from X-Forwarded-For only when the peer is a trusted proxy.
        proxy_headers=args.behind_proxy,
        forwarded_allow_ips=args.trusted_proxies if args.behind_proxy else None,
        ssl_certfile=args.tls_cert,
        ssl_keyfile=args.tls_key,
        ssl_context_factory=tls_context if args.tls_cert else None,
    )
    return 0


def cmd_identity(settings: Settings, args: argparse.Namespace) -> int:
    """Runs user/client/keys/demo-code actions against the application database."""
    from domain.errors import DomainError

    database = open_database(settings)
    if database.embedded is not None:
        _migrate(settings, database)
    # Actions over every patient's record (key rotation) run as the schema owner.
    target = database.admin if getattr(args, "needs_owner", False) else database.app
    try:
        _emit(args.action(settings, target, args))
    except DomainError as exc:
        raise CommandError(exc.message) from None
    except ConstraintViolation:
        raise CommandError("that name or id is already in use") from None
    except (ValueError, OwnerConnectionRequired) as exc:
        raise CommandError(str(exc)) from None
    return 0


def cmd_audit(settings: Settings, args: argparse.Namespace) -> int:
    database = open_database(settings)
    if database.embedded is not None:
        _migrate(settings, database)
    try:
        return int(args.action(settings, database.app, database.admin, args))
    except (ValueError, OwnerConnectionRequired) as exc:
        raise CommandError(str(exc)) from None


def cmd_export_schema(_: Settings, args: argparse.Namespace) -> int:
    from graph.schema import schema_sdl

    sdl = schema_sdl()
    path = Path(args.output)
    if args.check:
        if not path.exists() or path.read_text(encoding="utf-8") != sdl:
            print(f"{path} is out of date: run `phigate export-schema`", file=sys.stderr)
            return 1
        return 0
    path.write_text(sdl, encoding="utf-8")
    _emit({"written": str(path)})
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="phigate",
        description="phigate: a GraphQL gateway for HIPAA-regulated data. Configuration comes "
        "from environment variables (see docs/configuration.md); with no DATABASE_URL an embedded "
        "PostgreSQL is started in PHIGATE_DATA_DIR (default ./var/pgdata).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser(
        "check",
        help="validate the configuration (and the database); exit 1 naming every problem",
    )
    check.add_argument("--no-database", action="store_true", help="configuration only")
    check.set_defaults(handler=cmd_check)

    compliance = commands.add_parser(
        "compliance", help="evidence for the pre-deployment checklist"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    evidence = compliance.add_parser(
        "evidence",
        help="run the checklist's validations against this deployment; exit 1 on any FAIL",
    )
    evidence.add_argument("--url", help="the served gateway, to probe over HTTP(S)")
    evidence.add_argument("--ca-file", help="CA to verify --url's certificate with")
    evidence.add_argument("--format", choices=("table", "json"), default="table")
    evidence.add_argument("--output", help="also write the page to this file")
    evidence.set_defaults(handler=cmd_compliance_evidence)

    serve = commands.add_parser(
        "serve", help="run the gateway (migrates the embedded database first)"
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)"
    )
    serve.add_argument(
        "--port", type=_port, default=8000, help="port to listen on, 1 to 65535 (default 8000)"
    )
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument(
        "--limit-concurrency",
        type=_at_least_one,
        default=os.environ.get("PHIGATE_LIMIT_CONCURRENCY", str(DEFAULT_CONCURRENCY)),
        help="open connections or requests per worker before new requests get 503"
        f" (env PHIGATE_LIMIT_CONCURRENCY, default {DEFAULT_CONCURRENCY})",
    )
    serve.add_argument(
        "--tls-cert",
        default=os.environ.get("PHIGATE_TLS_CERT_FILE"),
        help="PEM certificate chain: serve HTTPS (TLS 1.2+) (env PHIGATE_TLS_CERT_FILE)",
    )
    serve.add_argument(
        "--tls-key",
        default=os.environ.get("PHIGATE_TLS_KEY_FILE"),
        help="PEM private key for --tls-cert (env PHIGATE_TLS_KEY_FILE)",
    )
    serve.add_argument(
        "--behind-proxy",
        action="store_true",
        default=os.environ.get("PHIGATE_BEHIND_PROXY") == "true",
        help="a load balancer terminates TLS and forwards (env PHIGATE_BEHIND_PROXY=true)",
    )
    serve.add_argument(
        "--trusted-proxies",
        default=os.environ.get("PHIGATE_TRUSTED_PROXIES", "127.0.0.1"),
        help="comma-separated addresses or CIDRs whose X-Forwarded-For is believed",
    )
    serve.add_argument(
        "--demo", action="store_true", help="seed synthetic demo data before serving"
    )
    serve.add_argument("--demo-patients", type=int, default=DEMO_PATIENTS, help=argparse.SUPPRESS)
    serve.set_defaults(handler=cmd_serve)

    migrate = commands.add_parser(
        "migrate",
        help="apply database migrations (connects with PHIGATE_MIGRATION_DATABASE_URL, "
        "else DATABASE_URL, else the embedded database)",
    )
    migrate.set_defaults(handler=cmd_migrate)

    seed = commands.add_parser(
        "seed-demo", help="add synthetic demo patients, BAAs and breaches (idempotent)"
    )
    seed.add_argument(
        "--patients",
        type=int,
        default=DEMO_PATIENTS,
        help=f"number of synthetic patients (default {DEMO_PATIENTS:,})",
    )
    seed.set_defaults(handler=cmd_seed_demo)

    export = commands.add_parser("export-schema", help="write the GraphQL schema (SDL) to a file")
    export.add_argument("--output", default="schema.graphql", help="path (default schema.graphql)")
    export.add_argument(
        "--check", action="store_true", help="exit 1 if the file differs from the code"
    )
    export.set_defaults(handler=cmd_export_schema)
    cli_identity.add_parsers(commands, cmd_identity)
    cli_audit.add_parsers(commands, cmd_audit)
    cli_policy.add_parsers(commands)
    cli_console.add_parsers(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        configure_logging(settings.log_level, settings.log_format)
        return int(args.handler(settings, args))
    except (
        CommandError,
        SettingsError,
        DatabaseUrlError,
        EmbeddedDatabaseError,
        PolicyError,
        OwnerConnectionRequired,
    ) as exc:
        print(f"phigate: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        reason = _unreachable(exc)
        if reason is None:
            raise
        print(f"phigate: {reason}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
