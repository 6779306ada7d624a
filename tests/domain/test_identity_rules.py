from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.passwords import common_passwords, password_rule
from domain.sessions import (
    LockoutPolicy,
    SessionPolicy,
    is_locked,
    lock_after_failure,
    session_problem,
    username_rule,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("password", "username", "rule"),
    [
        ("correct horse battery staple", "alice", None),
        ("short pass", "alice", "must be at least 12 characters"),
        ("x" * 129, "alice", "must be at most 128 characters"),
        (
            "passwordpassword",
            "alice",
            "must not be a repetition of a shorter string or of a few characters",
        ),
        (
            "abcabcabcabcabc",
            "alice",
            "must not be a repetition of a shorter string or of a few characters",
        ),
        ("Password123456", "alice", "is on the list of commonly used passwords"),
        ("qwertyuiopasdfgh", "alice", "must not be a keyboard or alphabet sequence"),
        ("abcdefghijklmnop", "alice", "must not be a keyboard or alphabet sequence"),
        ("alice-is-the-best-nurse", "alice", "must not contain the username"),
        ("ALICE-is-the-best-nurse", "alice", "must not contain the username"),
        (
            "aaaaaaaaaaaaaaaa",
            "bob",
            "must not be a repetition of a shorter string or of a few characters",
        ),
        (
            "abababababababab",
            "bob",
            "must not be a repetition of a shorter string or of a few characters",
        ),
        # No composition rules: all lower case letters and spaces is fine.
        ("plain lower case words only", "bob", None),
    ],
)
def test_password_policy(password: str, username: str, rule: str | None) -> None:
    assert password_rule(password, username=username, common=common_passwords()) == rule


def test_common_password_list_is_bundled_and_large() -> None:
    common = common_passwords()
    assert len(common) > 25_000
    assert "password" in common and "123456" in common


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({}, None),
        ({"revoked_at": NOW - timedelta(minutes=1)}, "revoked"),
        ({"expires_at": NOW}, "expired"),
        ({"last_seen_at": NOW - timedelta(minutes=15)}, "idle"),
        ({"last_seen_at": NOW - timedelta(minutes=14, seconds=59)}, None),
    ],
)
def test_session_problem(changes: dict, problem: str | None) -> None:
    values = {
        "last_seen_at": NOW - timedelta(minutes=1),
        "expires_at": NOW + timedelta(hours=1),
        "revoked_at": None,
    }
    values.update(changes)
    assert session_problem(now=NOW, policy=SessionPolicy(), **values) == problem


def test_lockout_rules() -> None:
    policy = LockoutPolicy(threshold=5, duration=timedelta(minutes=30))
    assert lock_after_failure(4, NOW, policy) is None
    assert lock_after_failure(5, NOW, policy) == NOW + timedelta(minutes=30)
    assert is_locked(NOW + timedelta(seconds=1), NOW)
    assert not is_locked(NOW, NOW)
    assert not is_locked(None, NOW)


@pytest.mark.parametrize(
    ("username", "ok"),
    [("demo.clinician", True), ("a1", False), ("Alice", False), ("1abc", False), ("x" * 65, False)],
)
def test_username_rule(username: str, ok: bool) -> None:
    assert (username_rule(username) is None) is ok
