"""The ASGI application."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import random
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from db import audit, gateways
from db.embedded import attach_embedded
from db.engine import DatabaseTarget, create_engine, parse_database_url
from domain.policy import Policy, PolicyError, bundled_policy, parse_policy
from graph.execution.planned import PlannedEndpoint
from graph.execution.planner import PLANS
from graph.http.authentication import BearerAuthentication
from graph.http.console.cookie import CookieSigner
from graph.http.console.oidc import OidcConsole
from graph.http.console.page import ConsolePage
from graph.http.console.routes import ConsoleEndpoints
from graph.http.middleware import (
    RequestContextMiddleware,
    RequestGuardMiddleware,
    SecurityHeadersMiddleware,
)
from graph.http.routes.auth import AuthEndpoints
from graph.http.view import GraphQLView
from graph.identity import Identity, build_identity
from graph.keys import field_cipher
from graph.logs import configure_logging, describe_exception
from graph.schema import schema as default_schema
from graph.settings import Settings, SettingsError

CORS_HEADERS = [
    "Authorization",
    "Content-Type",
    "X-Purpose-Of-Use",
    "X-Break-Glass-Reason",
    "X-Request-ID",
]

log = structlog.get_logger("phigate.app")
READY_TIMEOUT_SECONDS = 2.0


def create_app(
    settings: Settings, *, target: DatabaseTarget, schema: object = default_schema
) -> Starlette:
    engine = create_engine(
        target, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow
    )
    identity = build_identity(settings, engine)
    audit_reads = audit_read_engine(settings)

    async def health(_: Request) -> JSONResponse:
        # Liveness only: says nothing about versions, configuration or data.
        return JSONResponse({"status": "ok"})

    async def ready(_: Request) -> JSONResponse:
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS), engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:
            log.warning("not_ready", **describe_exception(exc))
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ready"})

    policy = load_policy(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        from graph.cli.checks import row_scope_problems

        problems = await row_scope_problems(engine, policy)
        if problems:
            await engine.dispose()
            raise SettingsError("; ".join(problems))
        sequencer = (
            asyncio.create_task(audit_sequencer(engine, settings.audit_seal_seconds))
            if settings.audit_seal_seconds
            else None
        )
        # Everything built so far (schema, policy, SQLAlchemy and Strawberry machinery)
        # lives as long as the process: frozen out of the collector's sight, a full
        # collection walks only what requests allocate (it walked the whole heap, pauses
        # of about 100 ms with every request on the worker waiting; now about 12 ms).
        # Young collections run every 10,000 allocations instead of 700: a request
        # allocates thousands of short-lived objects, and the collector's share of a
        # worker's CPU fell from about 6% to under 2%.
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        heartbeat = asyncio.create_task(
            gateway_heartbeat(engine, [cipher.envelope.provider, identity.config.envelope.provider])
        )
        sweeper = (
            asyncio.create_task(
                retention_schedule(engine, settings.retention_interval_seconds, settings)
            )
            if settings.retention_interval_seconds
            else None
        )
        try:
            yield
        finally:
            for task in (heartbeat, sweeper):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if sequencer is not None:
                sequencer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sequencer
                await last_seal(engine)
            await engine.dispose()
            if audit_reads is not None:
                await audit_reads.dispose()

    cipher = field_cipher(settings)
    signer = CookieSigner(cipher.index.derived_key(b"phigate console cookie v1"))
    graphql = GraphQLView(
        schema,
        engine=engine,
        audit_read_engine=audit_reads,
        settings=settings,
        policy=policy,
        cipher=cipher,
    )
    app = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/ready", ready, methods=["GET"]),
            Route(
                "/graphql",
                PlannedEndpoint(
                    graphql,
                    schema._schema,
                    PLANS,
                    enabled=settings.planned_execution,  # type: ignore[attr-defined]
                ),
                methods=["GET", "POST"],
            ),
            *ConsoleEndpoints(
                identity,
                policy=policy,
                schema=schema._schema,  # type: ignore[attr-defined]
                page=ConsolePage(
                    settings.console_assets, oidc=bool(settings.oidc_console_client_id)
                ),
                assets_directory=settings.console_assets,
                signer=signer,
                oidc=(
                    OidcConsole(identity, settings, signer)
                    if settings.oidc_console_client_id
                    else None
                ),
            ).routes(),
            *AuthEndpoints(identity).routes(),
        ],
        middleware=[
            # Outermost: the headers reach every response, the request context's own
            # last-resort error answer included.
            Middleware(SecurityHeadersMiddleware),
            Middleware(RequestContextMiddleware),
            *(
                [
                    Middleware(
                        CORSMiddleware,
                        allow_origins=list(settings.cors_origins),
                        allow_methods=["GET", "POST"],
                        allow_headers=CORS_HEADERS,
                        expose_headers=["X-Request-ID"],
                        allow_credentials=False,  # bearer tokens, never cookies
                        max_age=600,
                    )
                ]
                if settings.cors_origins
                else []
            ),
            Middleware(
                RequestGuardMiddleware,
                max_body_bytes=settings.max_body_bytes,
                body_timeout=settings.body_timeout_seconds,
            ),
            Middleware(BearerAuthentication, identity=identity, signer=signer),
        ],
        lifespan=lifespan,
    )
    app.state.engine = engine
    app.state.audit_read_engine = audit_reads
    app.state.identity = identity
    return app


PARTITION_CHECK_SECONDS = 3600
GC_THRESHOLDS = (10_000, 10, 10)


async def gateway_heartbeat(engine: AsyncEngine, providers: list[Any]) -> None:
    """Every few seconds: this process is alive and holds these key-encryption key
    versions (a key file that grew is reloaded first). `phigate keys rotate` waits for
    every live gateway to hold the version it re-wraps to. On the way out, the record
    goes."""
    instance = uuid.uuid4()
    host, pid = socket.gethostname(), os.getpid()
    try:
        while True:
            try:
                for provider in providers:
                    if hasattr(provider, "reload"):
                        provider.reload()
                held = set.intersection(*(set(provider.keys) for provider in providers))
                await gateways.beat(engine, instance, host=host, pid=pid, versions=sorted(held))
            except Exception as exc:
                log.warning("heartbeat_failed", **describe_exception(exc))
            await asyncio.sleep(gateways.HEARTBEAT_SECONDS)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.shield(gateways.leave(engine, instance))


async def audit_sequencer(engine: AsyncEngine, interval: float) -> None:
    """Seal new audit entries into the hash chain, every few seconds. Every gateway
    process runs one; an advisory lock lets one seal at a time and the others skip."""
    last_partition_check = 0.0
    while True:
        try:
            now = asyncio.get_running_loop().time()
            if now - last_partition_check > PARTITION_CHECK_SECONDS:
                await audit.ensure_partitions(engine)
                last_partition_check = now
            await audit.seal_all(engine)
        except Exception as exc:
            log.error("audit_seal_failed", **describe_exception(exc))
        await asyncio.sleep(interval)


# How long stopping waits for the sequencer's last pass.
LAST_SEAL_SECONDS = 10.0


async def last_seal(engine: AsyncEngine) -> None:
    """The sequencer's last pass, when the gateway stops: what its requests wrote since
    the last pass is sealed now, not at the next start. Another process sealing at the
    same moment (the lock) makes it a pass of nothing; what is left waits for the next
    pass anywhere, and nothing written is lost either way."""
    try:
        async with asyncio.timeout(LAST_SEAL_SECONDS):
            await audit.seal_all(engine)
    except Exception as exc:
        log.error("audit_seal_failed", **describe_exception(exc))


RETENTION_BATCH = 200


async def retention_schedule(engine: AsyncEngine, interval: float, settings: Settings) -> None:
    """Delete records past retention on a schedule (checklist C12). Every gateway runs
    one; the database lets one sweep at a time, picks the records and applies its own
    retention period (which only the schema owner sets), and each batch is audited in
    its transaction. The first sweep comes at a random moment within a minute of start
    (or of the interval, if shorter), so gateways started together do not all try at
    once."""
    from db.retention import policy_days
    from resolvers.retention import sweep_retention

    try:
        async with engine.connect() as connection:
            days = await policy_days(connection)
        if days != settings.retention_days:
            log.warning(
                "retention_period_differs",
                reason=f"the database's retention period is {days} days, PHIGATE_RETENTION_DAYS"
                f" {settings.retention_days}: the sweep keeps records for the longer;"
                " `phigate retention run` (schema owner) sets the database's",
            )
    except Exception as exc:
        log.warning("retention_policy_unreadable", **describe_exception(exc))
    await asyncio.sleep(random.uniform(0, min(interval, 60)))
    while True:
        try:
            deleted = await sweep_retention(
                engine, batch=RETENTION_BATCH, now=datetime.now(UTC), days=settings.retention_days
            )
            if deleted:
                log.info("retention_swept", count=deleted)
        except Exception as exc:
            log.error("retention_sweep_failed", **describe_exception(exc))
        await asyncio.sleep(interval)


def load_policy(settings: Settings) -> Policy:
    """The bundled policy, or a reviewed copy named by PHIGATE_POLICY_FILE. A policy that
    does not validate stops phigate from starting."""
    if settings.policy_file is None:
        return bundled_policy()
    try:
        return parse_policy(settings.policy_file.read_text(encoding="utf-8"))
    except OSError:
        raise SettingsError("PHIGATE_POLICY_FILE names a file that cannot be read") from None
    except PolicyError as error:
        raise SettingsError(f"PHIGATE_POLICY_FILE is not a valid policy: {error}") from None


def audit_read_engine(settings: Settings) -> AsyncEngine | None:
    """The replica the audit review queries read, when one is configured: a smaller
    pool (review is occasional), the same TLS rules as DATABASE_URL."""
    if settings.audit_read_database_url is None:
        return None
    target = parse_database_url(settings.audit_read_database_url, "PHIGATE_AUDIT_READ_DATABASE_URL")
    return create_engine(
        target,
        pool_size=max(2, settings.db_pool_size // 4),
        max_overflow=settings.db_max_overflow,
        application_name="phigate-audit-review",
    )


def database_target(settings: Settings) -> DatabaseTarget:
    """The application's own connection: DATABASE_URL, or the embedded server that
    `phigate serve` started, as the non-owner application role."""
    if settings.database_url is not None:
        return parse_database_url(settings.database_url)
    return attach_embedded(settings.data_dir).app_target()


def create_app_from_env() -> Starlette:
    """Factory for `uvicorn --factory graph.http.app:create_app_from_env` (used by workers)."""
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings, target=database_target(settings))


def engine_of(app: Starlette) -> AsyncEngine:
    return app.state.engine  # type: ignore[no-any-return]


def identity_of(app: Starlette) -> Identity:
    return app.state.identity  # type: ignore[no-any-return]
