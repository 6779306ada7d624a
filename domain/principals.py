"""Who is calling: the result of authentication, the input to authorization."""

from __future__ import annotations

from dataclasses import dataclass

from domain.roles import Role, ServiceScope


@dataclass(frozen=True, slots=True)
class Human:
    """A workforce member, authenticated with password and TOTP (or by a trusted IdP)."""

    user_id: str
    role: Role
    session_id: str | None  # None for tokens from an external identity provider
    source: str = "local"

    @property
    def actor_id(self) -> str:
        return self.user_id


@dataclass(frozen=True, slots=True)
class Service:
    """Another system, authenticated with OAuth2 client credentials."""

    client_id: str
    scopes: frozenset[ServiceScope]

    @property
    def actor_id(self) -> str:
        return self.client_id


Principal = Human | Service
