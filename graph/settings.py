"""Configuration from the environment. Every variable is listed in docs/configuration.md."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

from domain.audit import DEFAULT_AUDIT_RETENTION_DAYS, MIN_AUDIT_RETENTION_DAYS
from domain.retention import DEFAULT_RETENTION_DAYS, MIN_RETENTION_DAYS

E = TypeVar("E", bound=StrEnum)


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class SettingsError(ValueError):
    """A configuration value is wrong; the message names the variable and the rule."""


@dataclass(frozen=True, slots=True)
class Settings:
    environment: Environment = Environment.DEVELOPMENT
    database_url: str | None = field(default=None, repr=False)
    migration_database_url: str | None = field(default=None, repr=False)
    # A read replica for the audit review queries (auditEvents, accounting of
    # disclosures, statistics, anomalies): they scan the trail; requests keep the primary.
    audit_read_database_url: str | None = field(default=None, repr=False)
    data_dir: Path = Path("var/pgdata")
    db_pool_size: int = 10
    db_max_overflow: int = 5
    max_page_size: int = 100
    max_depth: int = 10
    max_aliases: int = 15
    max_tokens: int = 2000
    max_directives: int = 50
    max_cost: int = 5000
    max_input_list: int = 100
    max_result_items: int = 20_000
    max_body_bytes: int = 1024 * 1024
    execution_timeout_seconds: int = 10
    # A client has this long to send a request's headers, and then its body; past it
    # the connection is closed (slow clients must not hold a worker's connections).
    header_timeout_seconds: int = 10
    body_timeout_seconds: int = 30
    cors_origins: tuple[str, ...] = ()
    operations: str = (
        "open"  # "strict": registered operations only (see graph/execution/persisted.py)
    )
    adhoc_roles: tuple[str, ...] = ("ANALYST",)
    # GraphiQL's scripts and styles for the analyst console (`phigate console fetch-assets`).
    console_assets: Path = Path("var/console-assets")
    default_page_size: int = 20
    log_level: str = "INFO"
    log_format: str = "json"
    # Audit
    audit_seal_seconds: float = 2.0
    audit_retention_days: int = DEFAULT_AUDIT_RETENTION_DAYS
    retention_days: int = DEFAULT_RETENTION_DAYS
    # How often a gateway sweeps records past retention (0: never; run the CLI instead).
    retention_interval_seconds: int = 3600
    anomaly_bulk_patients: int = 50
    anomaly_bulk_minutes: int = 10
    anomaly_denials: int = 10
    anomaly_denial_minutes: int = 10
    business_hours: str = "7-19"
    timezone: str = "UTC"
    # Authorization
    policy_file: Path | None = None
    break_glass_minutes: int = 60
    # Identity
    issuer: str = "phigate"
    audience: str = "phigate-api"
    access_token_ttl_seconds: int = 300
    session_idle_minutes: float = 15
    session_max_hours: int = 12
    lockout_threshold: int = 5
    lockout_minutes: int = 30
    master_key: str | None = field(default=None, repr=False)
    blind_index_key: str | None = field(default=None, repr=False)
    kms_wrapped_keks: str | None = None  # ciphertexts only: safe to show
    kms_region: str | None = None
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19456
    argon2_parallelism: int = 1
    rate_limit_login: str = "10/minute"
    rate_limit_token: str = "30/minute"
    rate_limit_graphql: str = "600/minute"
    rate_limit_anonymous: str = "60/minute"
    # GraphQL hits a process reserves from the shared counter at a time (1: exact).
    rate_limit_lease: int = 10
    # Run planned operations without graphql-core's field-by-field resolution.
    planned_execution: bool = True
    # An external OpenID Connect issuer whose tokens are trusted too (optional).
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_jwks_file: Path | None = None
    oidc_jwks_url: str | None = None
    oidc_role_claim: str = "groups"
    oidc_role_map: str = ""
    oidc_require_mfa: bool = True
    # The analyst console signs in at the issuer (authorization code with PKCE) when a
    # client is registered for it there.
    oidc_console_client_id: str | None = None
    oidc_console_client_secret: str | None = field(default=None, repr=False)
    oidc_authorization_endpoint: str | None = None
    oidc_token_endpoint: str | None = None
    oidc_console_scopes: str = "openid profile"
    # A console session an identity provider vouched for ends sooner than a local one:
    # the provider (the groups, a person who left) is asked again at the next sign-in.
    oidc_console_session_hours: int = 4

    @property
    def uses_embedded_database(self) -> bool:
        return self.database_url is None

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.PRODUCTION

    def connections(self, workers: int) -> int:
        """The most connections one gateway holds on its database: each worker keeps up
        to pool + overflow open (the sequencer and the schedules share that pool)."""
        return workers * (self.db_pool_size + self.db_max_overflow)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            environment=_enum(env, "PHIGATE_ENV", Environment, Environment.DEVELOPMENT),
            database_url=_secret(env, "DATABASE_URL"),
            migration_database_url=_secret(env, "PHIGATE_MIGRATION_DATABASE_URL"),
            audit_read_database_url=_secret(env, "PHIGATE_AUDIT_READ_DATABASE_URL"),
            data_dir=Path(env.get("PHIGATE_DATA_DIR") or "var/pgdata"),
            db_pool_size=_int(env, "PHIGATE_DB_POOL_SIZE", 10, minimum=1, maximum=200),
            db_max_overflow=_int(env, "PHIGATE_DB_MAX_OVERFLOW", 5, minimum=0, maximum=200),
            max_page_size=_int(env, "PHIGATE_MAX_PAGE_SIZE", 100, minimum=1, maximum=1000),
            max_depth=_int(env, "PHIGATE_MAX_DEPTH", 10, minimum=2, maximum=100),
            max_aliases=_int(env, "PHIGATE_MAX_ALIASES", 15, minimum=0, maximum=1000),
            max_tokens=_int(env, "PHIGATE_MAX_TOKENS", 2000, minimum=100, maximum=100000),
            max_directives=_int(env, "PHIGATE_MAX_DIRECTIVES", 50, minimum=0, maximum=1000),
            max_cost=_int(env, "PHIGATE_MAX_COST", 5000, minimum=10, maximum=10_000_000),
            max_input_list=_int(env, "PHIGATE_MAX_INPUT_LIST", 100, minimum=1, maximum=100_000),
            max_result_items=_int(
                env, "PHIGATE_MAX_RESULT_ITEMS", 20_000, minimum=100, maximum=10_000_000
            ),
            max_body_bytes=_int(
                env, "PHIGATE_MAX_BODY_BYTES", 1024 * 1024, minimum=1024, maximum=64 * 1024 * 1024
            ),
            cors_origins=_origins(env, "PHIGATE_CORS_ORIGINS"),
            operations=_choice(
                env,
                "PHIGATE_OPERATIONS",
                ("open", "strict"),
                "strict" if env.get("PHIGATE_ENV") == "production" else "open",
            ),
            adhoc_roles=_roles(env, "PHIGATE_ADHOC_ROLES", ("ANALYST",)),
            console_assets=Path(env.get("PHIGATE_CONSOLE_ASSETS") or "var/console-assets"),
            execution_timeout_seconds=_int(
                env, "PHIGATE_EXECUTION_TIMEOUT_SECONDS", 10, minimum=1, maximum=300
            ),
            header_timeout_seconds=_int(
                env, "PHIGATE_HEADER_TIMEOUT_SECONDS", 10, minimum=1, maximum=300
            ),
            body_timeout_seconds=_int(
                env, "PHIGATE_BODY_TIMEOUT_SECONDS", 30, minimum=1, maximum=600
            ),
            default_page_size=_int(env, "PHIGATE_DEFAULT_PAGE_SIZE", 20, minimum=1, maximum=1000),
            log_level=_choice(
                env, "PHIGATE_LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO"
            ),
            log_format=_choice(env, "PHIGATE_LOG_FORMAT", ("json", "console"), "json"),
            anomaly_bulk_patients=_int(
                env, "PHIGATE_ANOMALY_BULK_PATIENTS", 50, minimum=1, maximum=100000
            ),
            anomaly_bulk_minutes=_int(
                env, "PHIGATE_ANOMALY_BULK_MINUTES", 10, minimum=1, maximum=1440
            ),
            anomaly_denials=_int(env, "PHIGATE_ANOMALY_DENIALS", 10, minimum=1, maximum=100000),
            anomaly_denial_minutes=_int(
                env, "PHIGATE_ANOMALY_DENIAL_MINUTES", 10, minimum=1, maximum=1440
            ),
            business_hours=_hours(env, "PHIGATE_BUSINESS_HOURS", "7-19"),
            timezone=_timezone(env, "PHIGATE_TIMEZONE", "UTC"),
            audit_seal_seconds=_int(env, "PHIGATE_AUDIT_SEAL_SECONDS", 2, minimum=0, maximum=3600),
            retention_interval_seconds=_int(
                env, "PHIGATE_RETENTION_INTERVAL_SECONDS", 3600, minimum=0, maximum=7 * 86400
            ),
            retention_days=_int(
                env,
                "PHIGATE_RETENTION_DAYS",
                DEFAULT_RETENTION_DAYS,
                minimum=MIN_RETENTION_DAYS,
                maximum=36500,
            ),
            audit_retention_days=_int(
                env,
                "PHIGATE_AUDIT_RETENTION_DAYS",
                DEFAULT_AUDIT_RETENTION_DAYS,
                minimum=MIN_AUDIT_RETENTION_DAYS,
                maximum=36500,
            ),
            policy_file=Path(env["PHIGATE_POLICY_FILE"])
            if env.get("PHIGATE_POLICY_FILE")
            else None,
            break_glass_minutes=_int(
                env, "PHIGATE_BREAK_GLASS_MINUTES", 60, minimum=5, maximum=720
            ),
            issuer=env.get("PHIGATE_ISSUER") or "phigate",
            audience=env.get("PHIGATE_AUDIENCE") or "phigate-api",
            access_token_ttl_seconds=_int(
                env, "PHIGATE_ACCESS_TOKEN_TTL_SECONDS", 300, minimum=30, maximum=3600
            ),
            session_idle_minutes=_minutes(env, "PHIGATE_SESSION_IDLE_MINUTES", 15, maximum=1440),
            session_max_hours=_int(env, "PHIGATE_SESSION_MAX_HOURS", 12, minimum=1, maximum=168),
            lockout_threshold=_int(env, "PHIGATE_LOCKOUT_THRESHOLD", 5, minimum=1, maximum=100),
            lockout_minutes=_int(env, "PHIGATE_LOCKOUT_MINUTES", 30, minimum=1, maximum=10080),
            master_key=_secret(env, "PHIGATE_MASTER_KEY"),
            blind_index_key=_secret(env, "PHIGATE_BLIND_INDEX_KEY"),
            kms_wrapped_keks=env.get("PHIGATE_KMS_WRAPPED_KEKS") or None,
            kms_region=env.get("PHIGATE_KMS_REGION") or None,
            argon2_time_cost=_int(env, "PHIGATE_ARGON2_TIME_COST", 2, minimum=1, maximum=20),
            argon2_memory_kib=_int(
                env, "PHIGATE_ARGON2_MEMORY_KIB", 19456, minimum=8192, maximum=4194304
            ),
            argon2_parallelism=_int(env, "PHIGATE_ARGON2_PARALLELISM", 1, minimum=1, maximum=16),
            rate_limit_login=_rate(env, "PHIGATE_RATE_LIMIT_LOGIN", "10/minute"),
            rate_limit_token=_rate(env, "PHIGATE_RATE_LIMIT_TOKEN", "30/minute"),
            rate_limit_graphql=_rate(env, "PHIGATE_RATE_LIMIT_GRAPHQL", "600/minute"),
            rate_limit_anonymous=_rate(env, "PHIGATE_RATE_LIMIT_ANONYMOUS", "60/minute"),
            rate_limit_lease=_int(env, "PHIGATE_RATE_LIMIT_LEASE", 10, minimum=1, maximum=1000),
            planned_execution=_bool(env, "PHIGATE_PLANNED_EXECUTION", True),
            oidc_issuer=env.get("PHIGATE_OIDC_ISSUER") or None,
            oidc_audience=env.get("PHIGATE_OIDC_AUDIENCE") or None,
            oidc_jwks_file=Path(env["PHIGATE_OIDC_JWKS_FILE"])
            if env.get("PHIGATE_OIDC_JWKS_FILE")
            else None,
            oidc_jwks_url=env.get("PHIGATE_OIDC_JWKS_URL") or None,
            oidc_role_claim=env.get("PHIGATE_OIDC_ROLE_CLAIM") or "groups",
            oidc_role_map=env.get("PHIGATE_OIDC_ROLE_MAP") or "",
            oidc_require_mfa=_bool(env, "PHIGATE_OIDC_REQUIRE_MFA", True),
            oidc_console_client_id=env.get("PHIGATE_OIDC_CONSOLE_CLIENT_ID") or None,
            oidc_console_client_secret=_secret(env, "PHIGATE_OIDC_CONSOLE_CLIENT_SECRET"),
            oidc_authorization_endpoint=env.get("PHIGATE_OIDC_AUTHORIZATION_ENDPOINT") or None,
            oidc_token_endpoint=env.get("PHIGATE_OIDC_TOKEN_ENDPOINT") or None,
            oidc_console_scopes=env.get("PHIGATE_OIDC_CONSOLE_SCOPES") or "openid profile",
            oidc_console_session_hours=_int(
                env, "PHIGATE_OIDC_CONSOLE_SESSION_HOURS", 4, minimum=1, maximum=12
            ),
        )._validated()

    def _validated(self) -> Settings:
        if self.default_page_size > self.max_page_size:
            raise SettingsError("PHIGATE_DEFAULT_PAGE_SIZE must not exceed PHIGATE_MAX_PAGE_SIZE")
        if self.oidc_issuer and not (self.oidc_jwks_file or self.oidc_jwks_url):
            raise SettingsError(
                "PHIGATE_OIDC_ISSUER needs PHIGATE_OIDC_JWKS_FILE or PHIGATE_OIDC_JWKS_URL"
            )
        if self.oidc_issuer and not self.oidc_audience:
            raise SettingsError("PHIGATE_OIDC_ISSUER needs PHIGATE_OIDC_AUDIENCE")
        if self.oidc_console_client_id:
            if not (
                self.oidc_issuer and self.oidc_authorization_endpoint and self.oidc_token_endpoint
            ):
                raise SettingsError(
                    "PHIGATE_OIDC_CONSOLE_CLIENT_ID needs PHIGATE_OIDC_ISSUER,"
                    " PHIGATE_OIDC_AUTHORIZATION_ENDPOINT and PHIGATE_OIDC_TOKEN_ENDPOINT"
                )
            for name, url in (
                ("PHIGATE_OIDC_AUTHORIZATION_ENDPOINT", self.oidc_authorization_endpoint),
                ("PHIGATE_OIDC_TOKEN_ENDPOINT", self.oidc_token_endpoint),
            ):
                if not _acceptable_endpoint(url, production=self.is_production):
                    raise SettingsError(
                        f"{name} must be an https:// URL (http:// only on this machine's"
                        " loopback address, outside production)"
                    )
            if "openid" not in self.oidc_console_scopes.split():
                raise SettingsError("PHIGATE_OIDC_CONSOLE_SCOPES must include openid")
        return self

    def describe(self) -> dict[str, str]:
        """Settings without secrets, for `phigate check` and start-up logs."""
        hidden = {
            "database_url",
            "migration_database_url",
            "audit_read_database_url",
            "master_key",
            "oidc_console_client_secret",
            "blind_index_key",
        }
        described = {
            f.name: str(getattr(self, f.name)) for f in fields(self) if f.name not in hidden
        }
        described["database"] = "embedded" if self.uses_embedded_database else "DATABASE_URL"
        if self.audit_read_database_url:
            described["audit_reads"] = "PHIGATE_AUDIT_READ_DATABASE_URL"
        return described


def _secret(env: Mapping[str, str], name: str) -> str | None:
    """``NAME`` or the contents of the file named by ``NAME_FILE`` (Docker/K8s secrets)."""
    value = env.get(name)
    path = env.get(f"{name}_FILE")
    if value and path:
        raise SettingsError(f"set either {name} or {name}_FILE, not both")
    if path:
        try:
            value = Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            # Not chained: a decoding error carries the file's bytes.
            raise SettingsError(f"{name}_FILE names a file that cannot be read as text") from None
    return value or None


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number") from None
    if not minimum <= value <= maximum:
        raise SettingsError(f"{name} must be between {minimum} and {maximum}")
    return value


def _minutes(env: Mapping[str, str], name: str, default: float, *, maximum: int) -> float:
    """A number of minutes, fractions allowed (a shorter idle limit is only stricter;
    the console's browser tests let a 12-second one expire)."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number of minutes") from None
    if not 0.1 <= value <= maximum:
        raise SettingsError(f"{name} must be between 0.1 and {maximum}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false")


def _rate(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name) or default
    count, _, period = raw.partition("/")
    if not count.isdigit() or int(count) < 1 or period not in ("second", "minute", "hour", "day"):
        raise SettingsError(
            f"{name} must look like 10/minute (a count per second, minute, hour or day)"
        )
    return raw


def _hours(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name) or default
    start, _, end = raw.partition("-")
    if not (start.isdigit() and end.isdigit() and 0 <= int(start) < int(end) <= 24):
        raise SettingsError(f"{name} must look like 7-19 (start and end hour, 0 to 24)")
    return raw


def _timezone(env: Mapping[str, str], name: str, default: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    raw = env.get(name) or default
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"{name} must be an IANA time zone such as America/New_York") from None
    return raw


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    raw = env.get(name) or default
    if raw not in allowed:
        raise SettingsError(f"{name} must be one of {', '.join(allowed)}")
    return raw


def _enum(env: Mapping[str, str], name: str, enum: type[E], default: E) -> E:
    raw = env.get(name)
    if not raw:
        return default
    try:
        return enum(raw)
    except ValueError:
        raise SettingsError(
            f"{name} must be one of {', '.join(member.value for member in enum)}"
        ) from None


def _origins(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Exact origins (scheme://host[:port]); never a wildcard: responses carry PHI."""
    origins = tuple(o.strip().rstrip("/") for o in (env.get(name) or "").split(",") if o.strip())
    for origin in origins:
        if "*" in origin or not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?", origin):
            raise SettingsError(
                f"{name} must list exact origins like https://app.example.org (no wildcard)"
            )
    return origins


def _roles(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    from domain.roles import Role

    raw = env.get(name)
    if raw is None:
        return default
    roles = tuple(part.strip().upper() for part in raw.split(",") if part.strip())
    known = {role.value for role in Role}
    if any(role not in known for role in roles):
        raise SettingsError(f"{name} must list roles among {', '.join(sorted(known))}")
    return roles


def _acceptable_endpoint(url: str, *, production: bool) -> bool:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    return (
        not production
        and parts.scheme == "http"
        and parts.hostname in ("127.0.0.1", "localhost", "::1")
    )
