from __future__ import annotations

import ssl
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

# libpq's TLS parameters, which asyncpg does not take as keyword arguments.
_TLS_PARAMS = ("sslmode", "sslrootcert", "sslcert", "sslkey")
LOCAL_SOCKET_HINTS = ("/",)


class DatabaseUrlError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Compiled:
    """A statement compiled once to PostgreSQL text with asyncpg's ``$n`` parameters,
    and the names of its parameters in that order: what a hot path sends straight to
    the driver, without SQLAlchemy's per-execution work."""

    sql: str
    parameters: tuple[str, ...]
    # Values the statement carries itself (a function's literal argument, say), used for
    # a parameter the caller does not give.
    constants: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        return [
            values[name] if name in values or name not in self.constants else self.constants[name]
            for name in self.parameters
        ]


_DRIVER_DIALECT = asyncpg_dialect.dialect()


def compile_for_driver(statement: Any) -> Compiled:
    compiled = statement.compile(dialect=_DRIVER_DIALECT)
    parameters = tuple(compiled.positiontup or ())
    constants = {
        name: compiled.binds[name].value for name in parameters if not compiled.binds[name].required
    }
    return Compiled(str(compiled), parameters, constants)


@dataclass(frozen=True, slots=True)
class DatabaseTarget:
    """Where to connect and how: the SQLAlchemy URL plus the asyncpg TLS setting."""

    url: URL
    tls: ssl.SSLContext | str | None

    @property
    def is_local(self) -> bool:
        host = self.url.host or self.url.query.get("host")
        if isinstance(host, tuple):
            host = host[0]
        return (
            host is None
            or str(host).startswith(LOCAL_SOCKET_HINTS)
            or host
            in (
                "localhost",
                "127.0.0.1",
                "::1",
            )
        )

    @property
    def verifies_server(self) -> bool:
        return isinstance(self.tls, ssl.SSLContext) and self.tls.verify_mode == ssl.CERT_REQUIRED

    def redacted(self) -> str:
        return self.url.render_as_string(hide_password=True)


def parse_database_url(raw: str, variable: str = "DATABASE_URL") -> DatabaseTarget:
    """Accept a libpq-style URL (``postgresql://...?sslmode=verify-full&sslrootcert=ca.pem``)
    and turn it into an asyncpg URL plus an SSL context."""
    try:
        url = make_url(raw)
    except Exception as exc:  # sqlalchemy raises ArgumentError with the raw URL inside
        raise DatabaseUrlError(f"{variable} is not a valid database URL") from exc
    if url.get_backend_name() != "postgresql":
        raise DatabaseUrlError(f"{variable} must point to PostgreSQL (postgresql://...)")
    url = url.set(drivername="postgresql+asyncpg")
    query = dict(url.query)
    tls_params = {key: query.pop(key) for key in _TLS_PARAMS if key in query}
    url = url.set(query=query)
    return DatabaseTarget(url=url, tls=_tls_from_params(tls_params))


def _tls_from_params(params: dict[str, str | tuple[str, ...]]) -> ssl.SSLContext | str | None:
    mode = str(params.get("sslmode", "")) or None
    if mode in (None, "disable"):
        return None
    if mode in ("allow", "prefer", "require"):
        return mode
    if mode not in ("verify-ca", "verify-full"):
        raise DatabaseUrlError(
            "sslmode must be one of disable, allow, prefer, require, verify-ca, verify-full"
        )
    cafile = params.get("sslrootcert")
    try:
        context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
        if "sslcert" in params:
            context.load_cert_chain(str(params["sslcert"]), str(params.get("sslkey") or "") or None)
    except (OSError, ssl.SSLError):
        raise DatabaseUrlError(
            "sslrootcert (and sslcert/sslkey, if given) must name readable PEM files"
        ) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = mode == "verify-full"
    return context


# How many connections roles other than a superuser may open on the server.
CONNECTION_SLOTS = (
    "SELECT current_setting('max_connections')::int"
    " - current_setting('superuser_reserved_connections')::int"
    " - coalesce(current_setting('reserved_connections', true)::int, 0)"
)


def create_engine(
    target: DatabaseTarget,
    *,
    pool_size: int = 10,
    max_overflow: int = 5,
    application_name: str = "phigate",
) -> AsyncEngine:
    connect_args: dict[str, object] = {
        "server_settings": {
            "application_name": application_name,
            "jit": "off",
            # Every statement is prepared once per connection (asyncpg's cache). With the
            # default ('auto') PostgreSQL plans a parameterised statement anew at each
            # execution whenever its generic plan looks dearer on paper, which it does for
            # every read under row-level security with a LIMIT parameter: the planner ran
            # for each request, about 0.3 ms of the database's CPU out of 1.1 for a
            # planned read (docs/performance.md). A plan made once per connection serves
            # every execution; the answers are the same.
            "plan_cache_mode": "force_generic_plan",
        },
    }
    if target.tls is not None:
        connect_args["ssl"] = target.tls
    return create_async_engine(
        target.url,
        # A connection opened for a burst is kept, up to pool_size + max_overflow, not
        # closed when returned (SQLAlchemy's overflow). Under load a little above the pool
        # the overflow churned: each new connection is a PostgreSQL backend to start, and
        # every statement to prepare and plan again on it. With a pool below the load
        # that took 1.7 times the database's CPU per request (docs/performance.md). The
        # cap on connections is the same; connections still open only when needed.
        pool_size=pool_size + max_overflow,
        max_overflow=0,
        pool_recycle=1800,
        connect_args=connect_args,
    )


_AUTOCOMMIT: weakref.WeakKeyDictionary[AsyncEngine, AsyncEngine] = weakref.WeakKeyDictionary()


def autocommit(engine: AsyncEngine) -> AsyncEngine:
    """The same pool, without BEGIN and COMMIT round trips: for single statements that
    are atomic on their own (on every request's path: the session check, the rate-limit
    counter). Built once per engine."""
    if engine not in _AUTOCOMMIT:
        _AUTOCOMMIT[engine] = engine.execution_options(isolation_level="AUTOCOMMIT")
    return _AUTOCOMMIT[engine]
