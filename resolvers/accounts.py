"""Account administration: users (always with TOTP), OAuth2 clients, signing keys.
Used by the CLI; every change is a security event naming who made it."""

from __future__ import annotations

import ipaddress
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pyotp

from db import audit, clients, sessions, users
from db.crypto import associated_data
from db.unit_of_work import RequestDatabase
from domain.errors import Conflict, FieldViolation, InvalidInput, NotFound, Violations
from domain.passwords import common_passwords, password_rule
from domain.roles import Role, ServiceScope
from domain.security_events import Outcome, SecurityEvent
from domain.sessions import UserStatus, username_rule
from resolvers.auth import AuthContext
from resolvers.identity import fingerprint

TOTP_ISSUER = "phigate"


@dataclass(frozen=True, slots=True)
class EnrolledUser:
    user_id: str
    username: str
    role: str
    provisioning_uri: str


@dataclass(frozen=True, slots=True)
class RegisteredClient:
    client_id: str
    client_secret: str
    scopes: list[str]


def provisioning_uri(username: str, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=TOTP_ISSUER)


def _encrypt_secret(ctx: AuthContext, user_id: uuid.UUID, secret: str) -> bytes:
    return ctx.config.envelope.encrypt_text(
        secret, aad=associated_data("users", "totp_secret", user_id)
    )


async def _write(ctx: AuthContext, db: RequestDatabase) -> None:
    await audit.append(db, ctx.events)
    await db.commit()


async def create_user(
    ctx: AuthContext,
    *,
    actor: str,
    username: str,
    role: Role,
    password: str,
    demo: bool = False,
    totp_secret: str | None = None,
) -> EnrolledUser:
    violations = Violations()
    violations.check("username", username_rule(username))
    violations.check(
        "password", password_rule(password, username=username, common=common_passwords())
    )
    violations.raise_if_any()
    secret = totp_secret or pyotp.random_base32()
    user_id = uuid.uuid4()
    password_hash = ctx.config.passwords.hash(password)
    db = RequestDatabase(ctx.engine)
    try:
        if await users.by_username(db, username) is not None:
            raise Conflict("username", "is already taken")
        await users.insert_user(
            db,
            {
                "id": user_id,
                "username": username,
                "role": role.value,
                "password_hash": password_hash,
                "totp_secret_ciphertext": _encrypt_secret(ctx, user_id, secret),
                "demo": demo,
                "created_at": ctx.now,
                "updated_at": ctx.now,
            },
        )
        ctx.record(
            SecurityEvent.USER_CREATED,
            Outcome.ALLOWED,
            actor_id=actor,
            actor_kind="SYSTEM",
            role=role.value,
            reason=f"USER:{user_id}",
        )
        await _write(ctx, db)
    finally:
        await db.close()
    return EnrolledUser(str(user_id), username, role.value, provisioning_uri(username, secret))


async def _change_user(
    ctx: AuthContext,
    *,
    actor: str,
    username: str,
    values: dict[str, Any],
    event: SecurityEvent,
    end_sessions: bool,
) -> Any:
    db = RequestDatabase(ctx.engine)
    try:
        row = await users.set_values(db, username, values, now=ctx.now)
        if row is None:
            raise NotFound("user", "username")
        if end_sessions:
            await sessions.revoke_all_for_user(db, row.id, now=ctx.now, reason=event.value)
        ctx.record(
            event,
            Outcome.ALLOWED,
            actor_id=actor,
            actor_kind="SYSTEM",
            role=row.role,
            reason=f"USER:{row.id}",
        )
        await _write(ctx, db)
        return row
    finally:
        await db.close()


async def unlock_user(ctx: AuthContext, *, actor: str, username: str) -> None:
    await _change_user(
        ctx,
        actor=actor,
        username=username,
        values={"failed_logins": 0, "locked_until": None},
        event=SecurityEvent.USER_UNLOCKED,
        end_sessions=False,
    )


async def disable_user(ctx: AuthContext, *, actor: str, username: str) -> None:
    await _change_user(
        ctx,
        actor=actor,
        username=username,
        values={"status": UserStatus.DISABLED.value},
        event=SecurityEvent.USER_DISABLED,
        end_sessions=True,
    )


async def sign_out_user(ctx: AuthContext, *, actor: str, username: str) -> None:
    """End every session of the user, tokens' and the console's alike, on every gateway
    at once, without disabling the account (a lost laptop, a shared screen). For a person
    an identity provider signs in, ``username`` is their subject as phigate records it
    (``oidc:<sub>``): the provider owns the account, phigate ends its sessions, and the
    provider's tokens issued until now open no new one (its next sign-in re-reads the
    groups)."""
    if username.startswith("oidc:"):
        db = RequestDatabase(ctx.engine)
        try:
            ended = await sessions.sign_out_external(
                db, username, now=ctx.now, reason=SecurityEvent.USER_SESSIONS_REVOKED.value
            )
            if ended is None:
                raise NotFound("session", "username")
            ctx.record(
                SecurityEvent.USER_SESSIONS_REVOKED,
                Outcome.ALLOWED,
                actor_id=actor,
                actor_kind="SYSTEM",
                reason=f"EXTERNAL:{ended}",
                subject_hash=fingerprint(username),
            )
            await _write(ctx, db)
        finally:
            await db.close()
        return
    await _change_user(
        ctx,
        actor=actor,
        username=username,
        values={},
        event=SecurityEvent.USER_SESSIONS_REVOKED,
        end_sessions=True,
    )


async def reset_mfa(ctx: AuthContext, *, actor: str, username: str) -> EnrolledUser:
    """A new TOTP secret; existing sessions end, so the next login proves the new one."""
    db = RequestDatabase(ctx.engine)
    try:
        row = await users.by_username(db, username)
    finally:
        await db.close()
    if row is None:
        raise NotFound("user", "username")
    secret = pyotp.random_base32()
    await _change_user(
        ctx,
        actor=actor,
        username=username,
        values={
            "totp_secret_ciphertext": _encrypt_secret(ctx, row.id, secret),
            "totp_last_step": None,
        },
        event=SecurityEvent.MFA_RESET,
        end_sessions=True,
    )
    return EnrolledUser(str(row.id), row.username, row.role, provisioning_uri(row.username, secret))


def _networks(values: Sequence[str]) -> list[str]:
    networks = []
    for index, value in enumerate(values):
        try:
            networks.append(str(ipaddress.ip_network(value, strict=False)))
        except ValueError:
            raise InvalidInput(
                [FieldViolation(f"allow_ip[{index}]", "must be an IP address or CIDR network")]
            ) from None
    return networks


async def create_client(
    ctx: AuthContext, *, actor: str, name: str, scopes: Sequence[str], allow_ip: Sequence[str] = ()
) -> RegisteredClient:
    violations = Violations()
    known = {scope.value for scope in ServiceScope}
    if not scopes:
        violations.check("scopes", "must name at least one scope")
    for scope in scopes:
        violations.check(
            "scopes", None if scope in known else f"must be among {', '.join(sorted(known))}"
        )
    if not 1 <= len(name) <= 100:
        violations.check("name", "must be 1 to 100 characters")
    violations.raise_if_any()
    client_id = f"svc_{secrets.token_hex(8)}"
    client_secret = secrets.token_urlsafe(32)
    db = RequestDatabase(ctx.engine)
    try:
        await clients.insert_client(
            db,
            {
                "client_id": client_id,
                "name": name,
                "secret_hash": ctx.config.passwords.hash(client_secret),
                "scopes": sorted(set(scopes)),
                "ip_allowlist": _networks(allow_ip),
                "created_at": ctx.now,
                "updated_at": ctx.now,
            },
        )
        ctx.record(
            SecurityEvent.CLIENT_CREATED,
            Outcome.ALLOWED,
            actor_id=actor,
            actor_kind="SYSTEM",
            reason=f"CLIENT:{client_id}",
        )
        await _write(ctx, db)
    finally:
        await db.close()
    return RegisteredClient(client_id, client_secret, sorted(set(scopes)))


async def list_users(ctx: AuthContext) -> list[dict[str, Any]]:
    """Workforce accounts, for an operator: never a secret, a hash or a TOTP seed."""
    db = RequestDatabase(ctx.engine)
    try:
        rows = await users.all_users(db)
    finally:
        await db.close()
    return [
        {
            "user_id": str(row.id),
            "username": row.username,
            "role": row.role,
            "status": row.status,
            "locked_until": row.locked_until.isoformat() if row.locked_until else None,
            "last_login_at": row.last_login_at.isoformat() if row.last_login_at else None,
            "demo": bool(row.demo),
        }
        for row in rows
    ]


async def list_clients(ctx: AuthContext) -> list[dict[str, Any]]:
    db = RequestDatabase(ctx.engine)
    try:
        rows = await clients.all_clients(db)
    finally:
        await db.close()
    return [
        {
            "client_id": row.client_id,
            "name": row.name,
            "scopes": list(row.scopes),
            "allow_ip": [str(network) for network in row.ip_allowlist or []],
            "status": row.status,
            "previous_secret_until": (
                row.previous_secret_until.isoformat() if row.previous_secret_until else None
            ),
            "created_at": row.created_at.isoformat(),
        }
        for row in rows
    ]


async def _change_client(
    ctx: AuthContext,
    *,
    actor: str,
    client_id: str,
    values: dict[str, Any],
    event: SecurityEvent,
    end_sessions: bool,
) -> Any:
    db = RequestDatabase(ctx.engine)
    try:
        row = await clients.set_values(db, client_id, values, now=ctx.now)
        if row is None:
            raise NotFound("client", "client_id")
        if end_sessions:
            await sessions.revoke_all_for_client(db, client_id, now=ctx.now, reason=event.value)
        ctx.record(
            event,
            Outcome.ALLOWED,
            actor_id=actor,
            actor_kind="SYSTEM",
            reason=f"CLIENT:{client_id}",
        )
        await _write(ctx, db)
        return row
    finally:
        await db.close()


async def disable_client(ctx: AuthContext, *, actor: str, client_id: str) -> None:
    """Its tokens stop working at once, in every gateway process: each request's
    database check (phigate.begin_request) requires an active client, and its sessions
    are revoked too."""
    await _change_client(
        ctx,
        actor=actor,
        client_id=client_id,
        values={"status": UserStatus.DISABLED.value},
        event=SecurityEvent.CLIENT_DISABLED,
        end_sessions=True,
    )


async def enable_client(ctx: AuthContext, *, actor: str, client_id: str) -> None:
    """Active again; it must request new tokens (the old sessions stay revoked)."""
    await _change_client(
        ctx,
        actor=actor,
        client_id=client_id,
        values={"status": UserStatus.ACTIVE.value},
        event=SecurityEvent.CLIENT_ENABLED,
        end_sessions=False,
    )


MAX_SECRET_OVERLAP_HOURS = 7 * 24


async def rotate_client_secret(
    ctx: AuthContext, *, actor: str, client_id: str, overlap_minutes: int
) -> str:
    """A new secret, shown once. The previous one keeps working for ``overlap_minutes``
    (0: not at all), so the service can be redeployed with the new one first; tokens
    already issued live out their few minutes."""
    if not 0 <= overlap_minutes <= MAX_SECRET_OVERLAP_HOURS * 60:
        raise InvalidInput(
            [
                FieldViolation(
                    "overlap_minutes", f"must be between 0 and {MAX_SECRET_OVERLAP_HOURS * 60}"
                )
            ]
        )
    db = RequestDatabase(ctx.engine)
    try:
        current = await clients.get_client(db, client_id)
    finally:
        await db.close()
    if current is None:
        raise NotFound("client", "client_id")
    secret = secrets.token_urlsafe(32)
    await _change_client(
        ctx,
        actor=actor,
        client_id=client_id,
        values={
            "secret_hash": ctx.config.passwords.hash(secret),
            "previous_secret_hash": current.secret_hash if overlap_minutes else None,
            "previous_secret_until": (
                ctx.now + timedelta(minutes=overlap_minutes) if overlap_minutes else None
            ),
        },
        event=SecurityEvent.CLIENT_SECRET_ROTATED,
        end_sessions=False,
    )
    return secret
