"""Date and time scalars whose parse errors state the rule and never the value (the
stock ones quote what they were given, and a malformed birth date is still PHI)."""

from __future__ import annotations

import contextlib
import datetime as dt
import re

import strawberry


class ScalarRuleError(ValueError):
    """Raised by scalar parsers; its message is safe to show."""


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

# No value this API stores is older than the oldest living patient or further ahead than
# a long contract; each field's own rule (domain/) narrows this further. Outside it,
# arithmetic on the value (deadlines, ages, time zones) could leave the calendar.
EARLIEST = dt.date(1900, 1, 1)
LATEST = dt.date(2199, 12, 31)
RANGE_RULE = f"must be between {EARLIEST.isoformat()} and {LATEST.isoformat()}"


def _parse_date(value: object) -> dt.date:
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise ScalarRuleError("must be an ISO-8601 date (YYYY-MM-DD)")
    try:
        parsed = dt.date.fromisoformat(value)
    except ValueError:
        raise ScalarRuleError("must be a real calendar date (YYYY-MM-DD)") from None
    if not EARLIEST <= parsed <= LATEST:
        raise ScalarRuleError(RANGE_RULE)
    return parsed


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
    if not EARLIEST <= parsed.date() <= LATEST:
        raise ScalarRuleError(RANGE_RULE)
    return parsed.astimezone(dt.UTC)


def _serialize_datetime(value: dt.datetime) -> str:
    """Never fails for a value the database holds: one stored instant at the edge of
    the calendar (kept from before the range rule) must not null the list it is in."""
    with contextlib.suppress(OverflowError, ValueError):  # at the edge: its own offset
        value = value.astimezone(dt.UTC)
    return value.isoformat().replace("+00:00", "Z")


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
