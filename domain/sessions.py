"""Session lifetime and account lockout: HIPAA §164.312(a)(2)(iii) automatic logoff,
and the checklist's lockout after repeated failures."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class UserStatus(StrEnum):
    ACTIVE = "ACTIVE"
    DISABLED = "DISABLED"


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    idle: timedelta = timedelta(minutes=15)
    absolute: timedelta = timedelta(hours=12)


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    threshold: int = 5
    duration: timedelta = timedelta(minutes=30)


def session_problem(
    *,
    last_seen_at: datetime,
    expires_at: datetime,
    revoked_at: datetime | None,
    now: datetime,
    policy: SessionPolicy,
) -> str | None:
    """Why a session may no longer be used, or None while it is alive."""
    if revoked_at is not None:
        return "revoked"
    if now >= expires_at:
        return "expired"
    if now - last_seen_at >= policy.idle:
        return "idle"
    return None


def is_locked(locked_until: datetime | None, now: datetime) -> bool:
    return locked_until is not None and locked_until > now


def lock_after_failure(failures: int, now: datetime, policy: LockoutPolicy) -> datetime | None:
    """Given the consecutive failures counted so far (this one included), when the
    account is locked until, if this failure locks it."""
    return now + policy.duration if failures >= policy.threshold else None


_USERNAME = re.compile(r"[a-z][a-z0-9._-]{2,63}")


def username_rule(username: str) -> str | None:
    if not _USERNAME.fullmatch(username):
        return (
            "must be 3 to 64 lower-case letters, digits, dots, hyphens or underscores, "
            "starting with a letter"
        )
    return None
