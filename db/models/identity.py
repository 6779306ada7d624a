from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import CIDR, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import Base, all_of, one_of, utc_timestamp, uuid_pk
from domain.roles import Role, ServiceScope
from domain.sessions import UserStatus


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        one_of("role", Role, "role"),
        one_of("status", UserStatus, "status"),
        CheckConstraint("username = lower(username)", name="username_lower_case"),
        CheckConstraint("failed_logins >= 0", name="failed_logins"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(30))
    password_hash: Mapped[str] = mapped_column(Text)
    # TOTP secret, AES-256-GCM envelope-encrypted; AAD binds it to this row.
    totp_secret_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    # Highest TOTP time step accepted: a code is good once only.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(10), server_default=text("'ACTIVE'"))
    failed_logins: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    locked_until: Mapped[datetime | None] = utc_timestamp(nullable=True)
    demo: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    last_login_at: Mapped[datetime | None] = utc_timestamp(nullable=True)
    created_at: Mapped[datetime] = utc_timestamp(server_now=True)
    updated_at: Mapped[datetime] = utc_timestamp(server_now=True)


class UserSession(Base):
    """A login (or an OAuth2 client's token, or an external identity provider's token).
    Tokens name it (``sid``) and carry its secret, whose SHA-256 alone is stored here: the
    database checks it before it sets a request's row context (``begin_request``, see
    migration 0016). Revoking or idling it ends its tokens everywhere."""

    __tablename__ = "sessions"
    __table_args__ = (
        CheckConstraint(
            "num_nonnulls(user_id, client_id, external_subject) = 1", name="one_subject"
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    client_id: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("oauth_clients.client_id", ondelete="CASCADE"), index=True
    )
    external_subject: Mapped[str | None] = mapped_column(String(100), index=True)
    external_role: Mapped[str | None] = mapped_column(String(30))
    secret_hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    # After a refresh the previous secret (in access tokens still in flight) stays good
    # for one access-token lifetime.
    previous_secret_hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    previous_secret_until: Mapped[datetime | None] = utc_timestamp(nullable=True)
    created_at: Mapped[datetime] = utc_timestamp(server_now=True)
    last_seen_at: Mapped[datetime] = utc_timestamp(server_now=True)
    expires_at: Mapped[datetime] = utc_timestamp()
    revoked_at: Mapped[datetime | None] = utc_timestamp(nullable=True)
    revoked_reason: Mapped[str | None] = mapped_column(String(30))
    client_ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(256))
    # Opened by the analyst console (a cookie holds it) rather than for tokens: the
    # database's session check accepts each kind of credential only for its own kind.
    console: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))


class ExternalSignOut(Base):
    """When an administrator last signed out a person an identity provider vouches for
    (`phigate user sign-out oidc:<sub>`). The provider's tokens stay valid until they
    expire; one issued before this moment opens no session any more, on any gateway."""

    __tablename__ = "external_sign_outs"

    subject: Mapped[str] = mapped_column(String(100), primary_key=True)
    signed_out_at: Mapped[datetime] = utc_timestamp()


class RowScopeCeiling(Base):
    """The widest patient rows a role (``role:NAME``) or OAuth2 scope (``scope:NAME``)
    reaches, as the database enforces it. Written by the schema owner only: the gateway
    reads it, and refuses to start when its policy asks for more."""

    __tablename__ = "row_scope_ceilings"
    __table_args__ = (
        CheckConstraint("row_scope IN ('ALL', 'CARE_TEAM', 'NONE')", name="row_scope"),
    )

    grantee: Mapped[str] = mapped_column(String(60), primary_key=True)
    row_scope: Mapped[str] = mapped_column(String(10))


class RowContextKey(Base):
    """The HMAC key (as RFC 2104's inner and outer pads) binding a row context to its
    transaction. The application role has no privilege on it."""

    __tablename__ = "row_context_key"
    __table_args__ = (CheckConstraint("id = 1", name="one_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    inner_pad: Mapped[bytes] = mapped_column(LargeBinary)
    outer_pad: Mapped[bytes] = mapped_column(LargeBinary)


class RefreshToken(Base):
    """One refresh token of a session, stored as its SHA-256 only. Each is good once:
    using it mints the next; presenting a used one revokes the session."""

    __tablename__ = "refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    issued_at: Mapped[datetime] = utc_timestamp(server_now=True)
    used_at: Mapped[datetime | None] = utc_timestamp(nullable=True)


class OAuthClient(Base):
    __tablename__ = "oauth_clients"
    __table_args__ = (
        all_of("scopes", ServiceScope, "scopes"),
        one_of("status", UserStatus, "status"),
    )

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    secret_hash: Mapped[str] = mapped_column(Text)
    # After a rotation, the previous secret keeps working until previous_secret_until.
    previous_secret_hash: Mapped[str | None] = mapped_column(Text)
    previous_secret_until: Mapped[datetime | None] = utc_timestamp(nullable=True)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    # Empty means any address may use the client.
    ip_allowlist: Mapped[list[Any]] = mapped_column(ARRAY(CIDR), server_default=text("'{}'"))
    status: Mapped[str] = mapped_column(String(10), server_default=text("'ACTIVE'"))
    created_at: Mapped[datetime] = utc_timestamp(server_now=True)
    updated_at: Mapped[datetime] = utc_timestamp(server_now=True)


class SigningKey(Base):
    """Token-signing keys. The newest unretired key signs; retired keys keep verifying
    until every token they signed has expired, then leave the JWKS."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(10))
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSONB)
    private_key_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = utc_timestamp(server_now=True)
    retired_at: Mapped[datetime | None] = utc_timestamp(nullable=True)


class RateLimitCounter(Base):
    """Fixed-window counters shared by every gateway process."""

    __tablename__ = "rate_limits"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    hits: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = utc_timestamp()


class PersistedOperation(Base):
    """A GraphQL document addressed by the SHA-256 of its text."""

    __tablename__ = "persisted_operations"
    __table_args__ = (
        CheckConstraint("source IN ('REGISTERED', 'AUTOMATIC')", name="source"),
        CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name="sha256_hex"),
    )

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    document: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(20))
    registered_by: Mapped[str | None] = mapped_column(String(100))
    registered_at: Mapped[datetime] = utc_timestamp(server_now=True)


class GatewayInstance(Base):
    """A running gateway process and the key-encryption key versions it holds, recorded
    every few seconds; `phigate keys rotate` waits for every live one to hold the new
    version before it re-wraps anything."""

    __tablename__ = "gateway_instances"

    instance_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    kek_versions: Mapped[list[int]] = mapped_column(ARRAY(Integer))
    started_at: Mapped[datetime] = utc_timestamp(server_now=True)
    seen_at: Mapped[datetime] = utc_timestamp(server_now=True)


class RetentionPolicy(Base):
    """The retention period the database's scheduled sweep applies (one row). Written by
    the schema owner only (`phigate retention run` sets it), so the gateway, which runs
    the sweep, cannot shorten it."""

    __tablename__ = "retention_policy"
    __table_args__ = (
        CheckConstraint("id", name="single_row"),
        CheckConstraint("days >= 365", name="days"),
    )

    id: Mapped[bool] = mapped_column(Boolean, primary_key=True, server_default=text("true"))
    days: Mapped[int] = mapped_column(Integer)
