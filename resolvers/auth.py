"""Login with password and TOTP, refresh-token rotation, logout, and authentication of
bearer tokens. Every outcome is recorded as a security event; none records the
password, the code or a token."""

from __future__ import annotations

import hmac
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pyotp
from cachetools import TLRUCache
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from db import audit, sessions, users
from db.crypto import associated_data
from db.unit_of_work import RequestDatabase
from domain.principals import Human, Principal, Service
from domain.roles import Role, ServiceScope
from domain.security_events import Outcome, SecurityEvent
from domain.sessions import UserStatus, is_locked, session_problem
from resolvers.context import RequestMeta
from resolvers.identity import IdentityConfig, fingerprint
from resolvers.oidc import OidcTrust, issued_at, unverified_issuer
from resolvers.tokens import LEEWAY_SECONDS, TokenRejected, TokenService

TOTP_DIGITS = 6
TOTP_WINDOW = 1  # accept the previous, current and next 30-second step


class AuthenticationFailed(Exception):
    """A login or refresh was refused. ``reason`` is for the audit trail only: callers
    all hear the same thing."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TokenResponse:
    access_token: str
    expires_in: int
    refresh_token: str | None = None
    scope: str | None = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }
        if self.refresh_token is not None:
            body["refresh_token"] = self.refresh_token
        if self.scope is not None:
            body["scope"] = self.scope
        return body


@dataclass(slots=True)
class AuthContext:
    engine: AsyncEngine
    config: IdentityConfig
    tokens: TokenService
    meta: RequestMeta
    now: datetime
    oidc: OidcTrust | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    def record(
        self,
        action: SecurityEvent,
        outcome: Outcome,
        *,
        actor_id: str | None = None,
        actor_kind: str | None = None,
        role: str | None = None,
        session_id: uuid.UUID | None = None,
        reason: str | None = None,
        subject_hash: str | None = None,
    ) -> None:
        self.events.append(
            {
                "occurred_at": self.now,
                "category": "SECURITY",
                "action": action.value,
                "outcome": outcome.value,
                "actor_id": actor_id,
                "actor_kind": actor_kind,
                "role": role,
                "session_id": session_id,
                "reason": reason,
                "subject_hash": subject_hash,
                "client_ip": self.meta.client_ip,
                "user_agent": self.meta.user_agent,
                "request_id": self.meta.request_id,
            }
        )


def totp_secret(ctx: AuthContext, user: Row[Any]) -> str:
    return ctx.config.envelope.decrypt_text(
        user.totp_secret_ciphertext, aad=associated_data("users", "totp_secret", user.id)
    )


def matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The RFC 6238 time step (30 s) a code belongs to, within one step either side."""
    if len(code) != TOTP_DIGITS or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=30)
    current = totp.timecode(now)
    for step in range(current - TOTP_WINDOW, current + TOTP_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


async def _issue_session_tokens(
    ctx: AuthContext,
    db: RequestDatabase,
    *,
    user: Row[Any],
    session_id: uuid.UUID,
    session_secret: str,
) -> TokenResponse:
    refresh_token = secrets.token_urlsafe(32)
    await sessions.add_refresh_token(
        db, token_hash=fingerprint(refresh_token), session_id=session_id, now=ctx.now
    )
    access = await ctx.tokens.mint(
        str(user.id),
        {
            "sid": str(session_id),
            sessions.SECRET_CLAIM: session_secret,
            "role": user.role,
            "amr": ["pwd", "otp"],
        },
        now=ctx.now,
    )
    return TokenResponse(
        access_token=access,
        expires_in=int(ctx.config.access_ttl.total_seconds()),
        refresh_token=refresh_token,
    )


async def _count_failure(
    ctx: AuthContext, db: RequestDatabase, user: Row[Any], action: SecurityEvent, reason: str
) -> None:
    lockout = ctx.config.lockout
    row = await users.count_failure(
        db, user.id, threshold=lockout.threshold, now=ctx.now, lock_until=ctx.now + lockout.duration
    )
    ctx.record(
        action,
        Outcome.DENIED,
        actor_id=str(user.id),
        actor_kind="USER",
        role=user.role,
        reason=reason,
    )
    if is_locked(row.locked_until, ctx.now) and row.failed_logins == lockout.threshold:
        ctx.record(
            SecurityEvent.ACCOUNT_LOCKED,
            Outcome.DENIED,
            actor_id=str(user.id),
            actor_kind="USER",
            role=user.role,
            reason="THRESHOLD_REACHED",
        )


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """A session opened by the analyst console's sign-in: no token is minted; the
    browser holds the session's id and secret in an HttpOnly cookie, and every request
    presents them to the database's own session check, as a token's claims would."""

    session_id: uuid.UUID
    secret: str
    actor: str


async def _console_session(
    ctx: AuthContext,
    db: RequestDatabase,
    *,
    user: Row[Any],
    session_id: uuid.UUID,
    session_secret: str,
) -> ConsoleSession:
    return ConsoleSession(session_id=session_id, secret=session_secret, actor=str(user.id))


async def _login(
    ctx: AuthContext,
    db: RequestDatabase,
    *,
    username: str,
    password: str,
    code: str,
    issue: Any = _issue_session_tokens,
    channel: str | None = None,
) -> Any:
    user = await users.by_username(db, username)
    # Always pay for one password verification, so that an unknown account answers
    # as slowly as a known one.
    password_ok = await ctx.config.passwords.verify(user.password_hash if user else None, password)
    if user is None:
        ctx.record(
            SecurityEvent.LOGIN_FAILED,
            Outcome.DENIED,
            reason="UNKNOWN_USER",
            subject_hash=fingerprint(username.lower()),
        )
        return None
    actor = {"actor_id": str(user.id), "actor_kind": "USER", "role": user.role}
    if is_locked(user.locked_until, ctx.now):
        ctx.record(SecurityEvent.LOGIN_WHILE_LOCKED, Outcome.DENIED, reason="LOCKED", **actor)
        return None
    if user.status != UserStatus.ACTIVE:
        ctx.record(SecurityEvent.LOGIN_FAILED, Outcome.DENIED, reason="DISABLED", **actor)
        return None
    if not password_ok:
        await _count_failure(ctx, db, user, SecurityEvent.LOGIN_FAILED, "BAD_PASSWORD")
        return None
    step = matching_step(totp_secret(ctx, user), code, ctx.now)
    if step is None:
        await _count_failure(ctx, db, user, SecurityEvent.MFA_FAILED, "BAD_CODE")
        return None
    if not await users.consume_totp_step(db, user.id, step):
        await _count_failure(ctx, db, user, SecurityEvent.MFA_FAILED, "CODE_REUSED")
        return None

    await users.record_success(db, user.id, now=ctx.now)
    if ctx.config.passwords.needs_rehash(user.password_hash):
        await users.set_values(
            db, user.username, {"password_hash": ctx.config.passwords.hash(password)}, now=ctx.now
        )
    secret, digest = sessions.new_secret()
    session = await sessions.create_session(
        db,
        {
            "user_id": user.id,
            "secret_hash": digest,
            "created_at": ctx.now,
            "last_seen_at": ctx.now,
            "expires_at": ctx.now + ctx.config.session.absolute,
            "client_ip": ctx.meta.client_ip,
            "user_agent": ctx.meta.user_agent,
            "console": channel == "CONSOLE",
        },
    )
    response = await issue(ctx, db, user=user, session_id=session.id, session_secret=secret)
    ctx.record(
        SecurityEvent.LOGIN_SUCCEEDED,
        Outcome.ALLOWED,
        session_id=session.id,
        reason=channel,
        **actor,
    )
    return response


async def _in_transaction(ctx: AuthContext, work: Any) -> Any:
    """Run ``work(db)``, write the recorded events in the same transaction, commit."""
    db = RequestDatabase(ctx.engine)
    try:
        result = await work(db)
        await audit.append(db, ctx.events)
        await db.commit()
        return result
    finally:
        await db.close()


async def login(ctx: AuthContext, *, username: str, password: str, code: str) -> TokenResponse:
    async def work(db: RequestDatabase) -> TokenResponse | None:
        return await _login(ctx, db, username=username, password=password, code=code)

    response = await _in_transaction(ctx, work)
    if response is None:
        raise AuthenticationFailed(ctx.events[0]["reason"] if ctx.events else "REFUSED")
    return response


async def console_login(
    ctx: AuthContext, *, username: str, password: str, code: str
) -> ConsoleSession:
    """The analyst console's sign-in: exactly the rules of ``login`` (lockout, single-use
    codes, the same events), a session without tokens."""

    async def work(db: RequestDatabase) -> ConsoleSession | None:
        return await _login(
            ctx,
            db,
            username=username,
            password=password,
            code=code,
            issue=_console_session,
            channel="CONSOLE",
        )

    session = await _in_transaction(ctx, work)
    if session is None:
        raise AuthenticationFailed(ctx.events[0]["reason"] if ctx.events else "REFUSED")
    return session


def _external_session_row(
    ctx: AuthContext, human: Human, digest: bytes, *, lifetime: timedelta
) -> dict[str, Any]:
    """A session an identity provider vouched for: its subject and mapped role."""
    return {
        "external_subject": human.user_id,
        "external_role": human.role.value,
        "secret_hash": digest,
        "created_at": ctx.now,
        "last_seen_at": ctx.now,
        "expires_at": ctx.now + lifetime,
        "client_ip": ctx.meta.client_ip,
        "user_agent": ctx.meta.user_agent,
    }


async def external_console_session(
    ctx: AuthContext, human: Human, *, lifetime: timedelta
) -> ConsoleSession:
    """A console session for a person the external identity provider signed in (the
    authorization-code flow): the same limits as a local sign-in (idle, absolute,
    revocable), recorded as a login."""
    secret, digest = sessions.new_secret()

    async def work(db: RequestDatabase) -> ConsoleSession:
        row = await sessions.create_session(
            db,
            _external_session_row(
                ctx, human, digest, lifetime=min(lifetime, ctx.config.session.absolute)
            )
            | {"console": True},
        )
        ctx.record(
            SecurityEvent.LOGIN_SUCCEEDED,
            Outcome.ALLOWED,
            actor_id=human.user_id,
            actor_kind="USER",
            role=human.role.value,
            session_id=row.id,
            reason="CONSOLE_OIDC",
        )
        return ConsoleSession(session_id=row.id, secret=secret, actor=human.user_id)

    result: ConsoleSession = await _in_transaction(ctx, work)
    return result


async def _refresh(
    ctx: AuthContext, db: RequestDatabase, refresh_token: str
) -> TokenResponse | None:
    token_hash = fingerprint(refresh_token)
    session_id = await sessions.use_refresh_token(db, token_hash, now=ctx.now)
    if session_id is None:
        known = await sessions.find_refresh_token(db, token_hash)
        if known is None:
            ctx.record(
                SecurityEvent.ACCESS_TOKEN_REJECTED, Outcome.DENIED, reason="UNKNOWN_REFRESH_TOKEN"
            )
            return None
        # A used token came back: whoever holds the chain is not its only holder.
        # End the session for both (RFC 9700 §4.14.2).
        session = await sessions.get_session(db, known.session_id)
        await sessions.revoke(db, known.session_id, now=ctx.now, reason="REFRESH_REUSE")
        ctx.record(
            SecurityEvent.REFRESH_REUSE_DETECTED,
            Outcome.DENIED,
            actor_id=str(session.user_id) if session else None,
            actor_kind="USER",
            session_id=known.session_id,
            reason="SESSION_REVOKED",
        )
        return None
    session = await sessions.get_session(db, session_id)
    user = await users.by_id(db, session.user_id) if session else None
    if session is None or user is None:
        return None
    actor = {
        "actor_id": str(user.id),
        "actor_kind": "USER",
        "role": user.role,
        "session_id": session.id,
    }
    problem = session_problem(
        last_seen_at=session.last_seen_at,
        expires_at=session.expires_at,
        revoked_at=session.revoked_at,
        now=ctx.now,
        policy=ctx.config.session,
    )
    if problem is None and user.status != UserStatus.ACTIVE:
        problem = "user_disabled"
    if problem is not None:
        ctx.record(
            SecurityEvent.ACCESS_TOKEN_REJECTED,
            Outcome.DENIED,
            reason=f"SESSION_{problem.upper()}",
            **actor,
        )
        return None
    await sessions.touch(db, session.id, now=ctx.now)
    secret = await sessions.rotate_secret(
        db, session.id, now=ctx.now, overlap=ctx.config.access_ttl
    )
    response = await _issue_session_tokens(
        ctx, db, user=user, session_id=session.id, session_secret=secret
    )
    ctx.record(SecurityEvent.TOKEN_REFRESHED, Outcome.ALLOWED, **actor)
    return response


async def refresh(ctx: AuthContext, *, refresh_token: str) -> TokenResponse:
    async def work(db: RequestDatabase) -> TokenResponse | None:
        return await _refresh(ctx, db, refresh_token)

    response = await _in_transaction(ctx, work)
    if response is None:
        raise AuthenticationFailed(ctx.events[0]["reason"] if ctx.events else "REFUSED")
    return response


async def logout(ctx: AuthContext, principal: Human) -> None:
    async def work(db: RequestDatabase) -> None:
        if principal.session_id is not None:
            await sessions.revoke(db, uuid.UUID(principal.session_id), now=ctx.now, reason="LOGOUT")
        ctx.record(
            SecurityEvent.LOGOUT,
            Outcome.ALLOWED,
            actor_id=principal.user_id,
            actor_kind="USER",
            role=principal.role.value,
            session_id=uuid.UUID(principal.session_id) if principal.session_id else None,
        )

    await _in_transaction(ctx, work)


@dataclass(frozen=True, slots=True)
class Presented:
    """A token whose signature and claims verified, and the session it names: the
    database still has to find that session live (``opening``, run as the request's
    transaction begins) before the caller is anyone."""

    opening: sessions.SessionOpening
    claimed: Principal | None  # None: a console cookie, whose holder the database names
    source: str = "local"

    def principal(self) -> Principal:
        """The caller as the database established it: the role it holds now (the
        database, not the token, is the authority), the scopes still granted."""
        verified = self.opening.verified
        if verified is None:
            raise sessions.SessionEnded()
        return self.principal_of(verified)

    def principal_of(self, verified: sessions.VerifiedSession) -> Principal:
        """The caller as a session check found it (this request's, or an earlier one's
        that a statement will check again: see graph.http.authentication.Deferred)."""
        if verified.subject_kind == "SERVICE":
            return Service(
                client_id=verified.actor,
                scopes=frozenset(ServiceScope(scope) for scope in verified.granted_scopes),
            )
        return Human(
            user_id=verified.actor,
            role=Role(verified.role),
            # A console session (claimed by no token) is the caller's own to end, whoever
            # vouched for it; an external provider's API token owns no session.
            session_id=str(self.opening.session_id)
            if verified.subject_kind == "USER" or self.claimed is None
            else None,
            source=self.source,
        )


async def authenticate(ctx: AuthContext, token: str) -> Presented:
    """A verified token and the session to open for it, or TokenRejected. Whether the
    session is live (and the row context it gives) is checked by the database as the
    request's transaction begins, on every request: a revocation, idle timeout or
    disablement takes effect at once on every gateway process."""
    idle = ctx.config.session.idle
    if ctx.oidc is not None and unverified_issuer(token) == ctx.oidc.issuer:
        human = await ctx.oidc.verify(token, now=ctx.now)
        session_id, secret = await _external_session(ctx, token, human)
        return Presented(
            sessions.SessionOpening(session_id, secret, idle=idle), human, source="oidc"
        )
    claims = await ctx.tokens.verify(token, now=ctx.now)
    secret = claims.get(sessions.SECRET_CLAIM)
    if not isinstance(secret, str) or "sid" not in claims:
        raise TokenRejected("no_session")
    try:
        session_id = uuid.UUID(str(claims["sid"]))
    except ValueError:
        raise TokenRejected("malformed_session") from None
    if "client_id" in claims:
        requested = tuple(sorted(set(str(claims.get("scope", "")).split())))
        service = Service(client_id=str(claims["client_id"]), scopes=frozenset())
        return Presented(
            sessions.SessionOpening(session_id, secret, scopes=requested, idle=idle), service
        )
    try:
        role = Role(str(claims.get("role")))
        user_id = str(uuid.UUID(str(claims["sub"])))
    except ValueError:
        raise TokenRejected("malformed_subject") from None
    human = Human(user_id=user_id, role=role, session_id=str(session_id))
    return Presented(sessions.SessionOpening(session_id, secret, idle=idle), human)


# External identity provider's tokens: the session opened for each, while it lasts.
_EXTERNAL_SESSIONS: TLRUCache[str, tuple[uuid.UUID, str]] = TLRUCache(
    maxsize=10_000, ttu=lambda _key, _value, now: now + 290, timer=time.time
)


async def _external_session(ctx: AuthContext, token: str, human: Human) -> tuple[uuid.UUID, str]:
    """A session for a token of the external identity provider, opened on its first
    use by this process and kept until the token's own expiry (at most 5 minutes): the
    provider owns the login, the database still needs a session to check."""
    key = fingerprint(token)
    found = _EXTERNAL_SESSIONS.get(key)
    if found is not None:
        return found
    secret, digest = sessions.new_secret()
    db = RequestDatabase(ctx.engine)
    try:
        # An administrator's sign-out holds against the tokens issued before it, which
        # stay valid at the provider until they expire; within the clocks' leeway of it,
        # a token counts as issued before (the provider's clock may run ahead of ours).
        issued = issued_at(token) - timedelta(seconds=LEEWAY_SECONDS)
        if await sessions.signed_out_after(db, human.user_id, issued):
            raise TokenRejected("idp_signed_out")
        row = await sessions.create_session(
            db, _external_session_row(ctx, human, digest, lifetime=EXTERNAL_SESSION)
        )
        await db.commit()
    finally:
        await db.close()
    _EXTERNAL_SESSIONS[key] = (row.id, secret)
    return row.id, secret


EXTERNAL_SESSION = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class ClientSession:
    """The session one OAuth2 client access token names: it lives as long as the token.
    Its id and secret are chosen before the token is signed, and the row is stored
    before the token leaves."""

    id: uuid.UUID = field(default_factory=uuid.uuid4)
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    def claims(self) -> dict[str, str]:
        return {"sid": str(self.id), sessions.SECRET_CLAIM: self.secret}

    async def store(
        self, db: RequestDatabase, *, client_id: str, now: datetime, lifetime: timedelta
    ) -> None:
        await sessions.create_session(
            db,
            {
                "id": self.id,
                "client_id": client_id,
                "secret_hash": sessions.secret_hash(self.secret),
                "created_at": now,
                "last_seen_at": now,
                "expires_at": now + lifetime,
            },
        )


async def flush_events(ctx: AuthContext) -> None:
    """Write events recorded outside a login or refresh (a rejected token, a refusal)."""
    if not ctx.events:
        return
    db = RequestDatabase(ctx.engine)
    try:
        await audit.append(db, ctx.events)
        await db.commit()
    finally:
        await db.close()
    ctx.events.clear()
