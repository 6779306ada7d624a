"""Date and time scalars whose parse errors state the rule and never the value (the
stock ones quote what they were given, and a malformed birth date is still PHI)."""

from __future__ import annotations

import datetime as dt
import re

import strawberry


class ScalarRuleError(ValueError):
    """Raised by scalar parsers; its message is safe to show."""


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _parse_date(value: object) -> dt.date:
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise ScalarRuleError("must be an ISO-8601 date (YYYY-MM-DD)")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ScalarRuleError("must be a real calendar date (YYYY-MM-DD)") from None


def _parse_datetime(value: object) -> dt.datetime:
    if not isinstance(value, str):
        raise ScalarRuleError("must be an ISO-8601 date-time with a UTC offset")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ScalarRuleError(
            "must be an ISO-8601 date-time with a UTC offset, e.g. 2026-01-31T09:30:00Z"
        ) from None
    if parsed.tzinfo is None:
        raise ScalarRuleError("must carry a UTC offset (Z or +HH:MM)")
    return parsed.astimezone(dt.UTC)


def _serialize_datetime(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


SCALAR_MAP = {
    dt.date: strawberry.scalar(
        name="Date",
        description="A calendar date, ISO-8601 (YYYY-MM-DD).",
        serialize=dt.date.isoformat,
        parse_value=_parse_date,
    ),
    dt.datetime: strawberry.scalar(
        name="DateTime",
        description="An instant, ISO-8601 with a UTC offset; always returned in UTC (Z).",
        serialize=_serialize_datetime,
        parse_value=_parse_datetime,
    ),
}
