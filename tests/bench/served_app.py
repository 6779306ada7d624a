"""The gateway as uvicorn factories for the end-to-end overhead benchmark: the full
schema, and the same schema with minimum-necessary enforcement and the audit trail
switched off (a configuration nothing serves outside benchmarks)."""

from __future__ import annotations

from starlette.applications import Starlette

from graph.http.app import create_app, database_target
from graph.logs import configure_logging
from graph.schema import build_schema
from graph.settings import Settings


def _app(*, enforce: bool, audit: bool) -> Starlette:
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    schema = build_schema(enforce=enforce, audit=audit)
    return create_app(settings, target=database_target(settings), schema=schema)


def full() -> Starlette:
    return _app(enforce=True, audit=True)


def bare() -> Starlette:
    return _app(enforce=False, audit=False)
