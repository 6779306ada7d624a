"""Password policy after NIST SP 800-63B §5.1.1.2: long enough, not common, not the
username; no composition rules and no periodic expiry."""

from __future__ import annotations

from collections.abc import Container
from functools import cache
from importlib.resources import files

MIN_LENGTH = 12
MAX_LENGTH = 128  # long passphrases are welcome; unbounded input is not
# Keyboard rows and alphabets: a password that is a run of one is sequential.
_SEQUENCES = (
    "abcdefghijklmnopqrstuvwxyz",
    "qwertyuiopasdfghjklzxcvbnm",
    "qwertzuiopasdfghjklyxcvbnm",
    "azertyuiopqsdfghjklmwxcvbn",
    "1234567890",
)


def _is_repetition(folded: str) -> bool:
    """The same unit repeated: "abcabcabcabc", "passwordpassword"."""
    length = len(folded)
    return any(
        length % size == 0 and folded[:size] * (length // size) == folded
        for size in range(1, length // 2 + 1)
    )


def _is_sequence(folded: str) -> bool:
    return any(folded in row or folded in row[::-1] for row in _SEQUENCES)


@cache
def common_passwords() -> frozenset[str]:
    """The bundled list (zxcvbn's 30,000 most common passwords), lower-cased."""
    text = files("domain").joinpath("common_passwords.txt").read_text(encoding="utf-8")
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line and not line.startswith("#")
    )


def password_rule(password: str, *, username: str, common: Container[str]) -> str | None:
    if len(password) < MIN_LENGTH:
        return f"must be at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"must be at most {MAX_LENGTH} characters"
    folded = password.lower()
    if folded in common or folded.strip("0123456789!") in common:
        return "is on the list of commonly used passwords"
    if username and username.lower() in folded:
        return "must not contain the username"
    if _is_repetition(folded) or len(set(folded)) < 4:
        return "must not be a repetition of a shorter string or of a few characters"
    if _is_sequence(folded):
        return "must not be a keyboard or alphabet sequence"
    return None
