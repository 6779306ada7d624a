"""What authentication needs, built once per process from configuration."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta

import anyio
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from db.crypto import Envelope
from domain.sessions import LockoutPolicy, SessionPolicy


@dataclass(frozen=True)
class Passwords:
    """argon2id hashing. Verification runs off the event loop (it is meant to be slow)."""

    hasher: PasswordHasher
    # Verified against when the account does not exist, so that answering "no such
    # user" costs the same as answering "wrong password".
    decoy_hash: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "decoy_hash", self.hasher.hash("decoy password for unknown accounts")
        )

    @classmethod
    def argon2id(cls, *, time_cost: int, memory_kib: int, parallelism: int) -> Passwords:
        return cls(
            PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
        )

    def hash(self, password: str) -> str:
        return self.hasher.hash(password)

    def check(self, stored_hash: str | None, password: str) -> bool:
        """Blocking verification; with no stored hash, verifies against the decoy and fails."""
        try:
            return (
                self.hasher.verify(stored_hash or self.decoy_hash, password)
                and stored_hash is not None
            )
        except (VerificationError, InvalidHashError):
            return False

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        return await anyio.to_thread.run_sync(self.check, stored_hash, password)

    def needs_rehash(self, stored_hash: str) -> bool:
        return self.hasher.check_needs_rehash(stored_hash)


@dataclass(frozen=True)
class IdentityConfig:
    issuer: str
    audience: str
    access_ttl: timedelta
    session: SessionPolicy
    lockout: LockoutPolicy
    passwords: Passwords
    envelope: Envelope


def fingerprint(value: str) -> str:
    """SHA-256 of a secret-ish value (a refresh token, a submitted username)."""
    return hashlib.sha256(value.encode()).hexdigest()
