"""Identity, assembled once per process: token service, policies, rate limits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from db.crypto import Envelope
from domain.sessions import LockoutPolicy, SessionPolicy
from graph.http.rate_limits import RateLimits
from graph.keys import key_provider
from graph.settings import Settings, SettingsError
from resolvers.auth import AuthContext
from resolvers.context import RequestMeta
from resolvers.identity import IdentityConfig, Passwords
from resolvers.oidc import OidcConfigurationError, OidcTrust, parse_role_map
from resolvers.tokens import TokenService


@dataclass(frozen=True)
class Identity:
    engine: AsyncEngine
    config: IdentityConfig
    tokens: TokenService
    limits: RateLimits
    oidc: OidcTrust | None = None

    def context(self, meta: RequestMeta) -> AuthContext:
        return AuthContext(
            engine=self.engine,
            config=self.config,
            tokens=self.tokens,
            meta=meta,
            now=datetime.now(UTC),
            oidc=self.oidc,
        )


def identity_config(settings: Settings) -> IdentityConfig:
    return IdentityConfig(
        issuer=settings.issuer,
        audience=settings.audience,
        access_ttl=timedelta(seconds=settings.access_token_ttl_seconds),
        session=SessionPolicy(
            idle=timedelta(minutes=settings.session_idle_minutes),
            absolute=timedelta(hours=settings.session_max_hours),
        ),
        lockout=LockoutPolicy(
            threshold=settings.lockout_threshold,
            duration=timedelta(minutes=settings.lockout_minutes),
        ),
        passwords=Passwords.argon2id(
            time_cost=settings.argon2_time_cost,
            memory_kib=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        ),
        envelope=Envelope(key_provider(settings)),
    )


def build_identity(settings: Settings, engine: AsyncEngine) -> Identity:
    config = identity_config(settings)
    tokens = TokenService(
        engine,
        envelope=config.envelope,
        issuer=config.issuer,
        audience=config.audience,
        access_ttl=config.access_ttl,
    )
    return Identity(
        engine=engine,
        config=config,
        tokens=tokens,
        limits=RateLimits.from_settings(settings, engine),
        oidc=oidc_trust(settings),
    )


def oidc_trust(settings: Settings) -> OidcTrust | None:
    if not settings.oidc_issuer:
        return None
    assert settings.oidc_audience is not None
    try:
        return OidcTrust(
            issuer=settings.oidc_issuer,
            audience=settings.oidc_audience,
            role_claim=settings.oidc_role_claim,
            role_map=parse_role_map(settings.oidc_role_map),
            require_mfa=settings.oidc_require_mfa,
            jwks_file=settings.oidc_jwks_file,
            jwks_url=settings.oidc_jwks_url,
        )
    except OidcConfigurationError as exc:
        raise SettingsError(str(exc)) from None
