"""`phigate check`: every reason this configuration is not fit to serve PHI, all at once.
Run by hand, and by `phigate serve` before starting in production (which then refuses)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import text

from db.engine import (
    CONNECTION_SLOTS,
    DatabaseTarget,
    DatabaseUrlError,
    create_engine,
    parse_database_url,
)
from db.visibility import row_scope_ceilings, wider_than_database
from domain.permissions import Permission
from domain.policy import Policy
from graph.settings import Settings, SettingsError


def configuration_problems(settings: Settings, environ: dict[str, str] | None = None) -> list[str]:
    """Problems that need no database. Production rules apply in production only."""
    from graph.http.app import load_policy
    from graph.keys import blind_index, key_provider

    env = dict(os.environ if environ is None else environ)
    problems: list[str] = []
    for name, build in (("key-encryption key", key_provider), ("blind-index key", blind_index)):
        if settings.is_production or settings.master_key or settings.kms_wrapped_keks:
            try:
                build(settings)
            except SettingsError as exc:
                problems.append(f"{name}: {exc}")
    try:
        policy = load_policy(settings)
    except SettingsError as exc:
        problems.append(str(exc))
    else:
        grants = (*policy.roles.values(), *policy.scopes.values())
        if all(Permission.INTROSPECT in grant.permissions for grant in grants):
            problems.append("the policy opens introspection to every role and scope")
    certificate, key = env.get("PHIGATE_TLS_CERT_FILE"), env.get("PHIGATE_TLS_KEY_FILE")
    for variable, path in (("PHIGATE_TLS_CERT_FILE", certificate), ("PHIGATE_TLS_KEY_FILE", key)):
        if path and not Path(path).is_file():
            problems.append(f"{variable} names a file that does not exist")
    if not settings.is_production:
        return problems
    if settings.uses_embedded_database:
        problems.append("DATABASE_URL is unset: production needs a managed PostgreSQL")
    for variable, raw in (
        ("DATABASE_URL", settings.database_url),
        ("PHIGATE_AUDIT_READ_DATABASE_URL", settings.audit_read_database_url),
    ):
        if raw is None:
            continue
        try:
            target = parse_database_url(raw, variable)
            if not target.is_local and not target.verifies_server:
                problems.append(f"{variable} must use sslmode=verify-full with sslrootcert")
        except DatabaseUrlError as exc:
            message = str(exc)
            problems.append(message if message.startswith(variable) else f"{variable}: {message}")
    if not (certificate and key) and env.get("PHIGATE_BEHIND_PROXY") != "true":
        problems.append(
            "TLS is off: set PHIGATE_TLS_CERT_FILE and PHIGATE_TLS_KEY_FILE, or"
            " PHIGATE_BEHIND_PROXY=true behind a TLS-terminating load balancer"
        )
    if settings.log_level == "DEBUG":
        problems.append("PHIGATE_LOG_LEVEL=DEBUG is for development")
    return problems


async def row_scope_problems(engine: Any, policy: Policy) -> list[str]:
    """Row-level security takes each caller's row scope from the database, not from the
    policy: a policy that asks for more than the database allows is a configuration the
    gateway must not serve (the owner applies it: `phigate policy apply-row-scopes`)."""
    async with engine.connect() as connection:
        ceilings = await row_scope_ceilings(connection)
    return [f"row scope: {wider}" for wider in wider_than_database(policy.row_scopes(), ceilings)]


async def database_problems(settings: Settings) -> list[str]:
    """Problems found in the database itself: reachable, current, no demo accounts in
    production."""
    from db.migrate import current_revision, head_revision
    from graph.http.app import database_target, load_policy

    problems: list[str] = []
    if settings.uses_embedded_database:
        return problems
    engine = create_engine(database_target(settings), pool_size=1, max_overflow=0)
    try:
        if await current_revision(engine) != head_revision():
            problems.append("the database schema is not current: run `phigate migrate`")
            return problems
        async with engine.connect() as connection:
            demo = await connection.scalar(
                text("SELECT count(*) FROM phigate.users WHERE demo AND status = 'ACTIVE'")
            )
        if settings.is_production and demo:
            problems.append(f"{demo} demo account(s) are active: disable them")
        problems += await row_scope_problems(engine, load_policy(settings))
    except Exception as exc:  # unreachable, refused, wrong password: name the kind only
        problems.append(f"the database cannot be used ({type(exc).__name__})")
    finally:
        await engine.dispose()
    return problems


async def connection_shortfall(
    target: DatabaseTarget, settings: Settings, workers: int
) -> str | None:
    """Why this gateway may be refused connections under load, if it may: its workers
    can hold more than the server allows, and a request refused a connection is a 503.
    Said, not refused: behind a pooler (PgBouncer) the gateway's connections are the
    pooler's clients, and the server's limit is not theirs."""
    needed = settings.connections(workers)
    engine = create_engine(target, pool_size=1, max_overflow=0, application_name="phigate-cli")
    try:
        async with engine.connect() as connection:
            slots = int(await connection.scalar(text(CONNECTION_SLOTS)))
    finally:
        await engine.dispose()
    if needed <= slots:
        return None
    return (
        f"this gateway may hold {needed} database connections ({workers} worker(s) x"
        f" (PHIGATE_DB_POOL_SIZE {settings.db_pool_size} + PHIGATE_DB_MAX_OVERFLOW"
        f" {settings.db_max_overflow})) and the database allows {slots} (max_connections"
        " less its reserved slots): under load some requests would be refused (503)."
        " Raise max_connections, lower the pool, or put PgBouncer in front"
    )
