"""Server-side sessions and their single-use refresh tokens."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as upsert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from db.models import ExternalSignOut, RefreshToken, UserSession
from db.unit_of_work import RequestDatabase

sessions = UserSession.__table__
refresh_tokens = RefreshToken.__table__
external_sign_outs = ExternalSignOut.__table__

# Activity is written at most this often: the idle clock is this precise.
TOUCH_INTERVAL = timedelta(seconds=15)
# A check that is not activity (the console asking how long its session has left): the
# idle clock is not reset.
NO_TOUCH = timedelta(days=3650)

# The access-token claim carrying the session's secret.
SECRET_CLAIM = "ssk"  # noqa: S105 - a claim name, not a secret


def new_secret() -> tuple[str, bytes]:
    """A session secret for its tokens, and the SHA-256 the database keeps."""
    secret = secrets.token_urlsafe(32)
    return secret, secret_hash(secret)


def secret_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class SessionEnded(Exception):
    """The database found no live session for the secret presented (revoked, expired,
    idle, its user or client disabled, or a secret that is not the session's)."""


@dataclass(frozen=True, slots=True)
class VerifiedSession:
    """What the database established when it opened a request's transaction."""

    subject_kind: str  # USER, SERVICE or EXTERNAL
    actor: str
    role: str | None
    granted_scopes: tuple[str, ...]
    row_scope: str
    # Open break-glass episodes of the user, by patient, for patients not on their care
    # team: a read of one of those patients is a read through the episode.
    episodes: Mapping[uuid.UUID, uuid.UUID]


_BEGIN_REQUEST = text(
    "SELECT subject_kind, actor, role, granted_scopes, row_scope, episode_ids, episode_patients"
    " FROM phigate.begin_request(:session_id, :secret, :scopes, :idle, :touch, :console)"
)


class SessionOpening:
    """Run by a request's connection right after each BEGIN: the database checks the
    session and records the transaction's row context (see migration 0016). The first
    result is kept; a later transaction of the same request must find the same session
    live, or it fails."""

    def __init__(
        self,
        session_id: uuid.UUID,
        secret: str,
        *,
        scopes: tuple[str, ...] = (),
        idle: timedelta,
        touch: timedelta | None = None,
        console: bool = False,
    ) -> None:
        # Activity is written often enough for the idle limit to hold: at most every
        # TOUCH_INTERVAL, and four times within the idle limit when that is short.
        touch = touch if touch is not None else min(TOUCH_INTERVAL, idle / 4)
        self._parameters = {
            "session_id": session_id,
            "secret": secret,
            "scopes": list(scopes),
            "idle": idle.total_seconds(),
            "touch": touch.total_seconds(),
            # Which kind of credential is presented: the session must be of that kind.
            "console": console,
        }
        self.verified: VerifiedSession | None = None

    @property
    def session_id(self) -> uuid.UUID:
        return self._parameters["session_id"]  # type: ignore[return-value]

    def checked_by_statement(self, expected: VerifiedSession) -> dict[str, Any]:
        """The parameters of a statement that runs this check itself and compares what
        it finds with ``expected`` (``db.audit.read_and_audit`` with ``checked``). Only
        for a token's session: a console session is checked the usual way."""
        if self._parameters["console"]:
            raise ValueError("a console session is not checked inside a read")
        return {
            "check_session": self._parameters["session_id"],
            "check_secret": self._parameters["secret"],
            "check_scopes": self._parameters["scopes"],
            "check_idle": self._parameters["idle"],
            "check_touch": self._parameters["touch"],
            "expect_kind": expected.subject_kind,
            "expect_actor": expected.actor,
            "expect_role": expected.role,
            "expect_row_scope": expected.row_scope,
            # In code-point order, as the statement sorts them (COLLATE "C").
            "expect_scopes": sorted(expected.granted_scopes),
        }

    async def __call__(self, connection: AsyncConnection) -> None:
        row = (await connection.execute(_BEGIN_REQUEST, self._parameters)).first()
        if row is None:
            raise SessionEnded()
        if self.verified is None:
            self.verified = VerifiedSession(
                subject_kind=row.subject_kind,
                actor=row.actor,
                role=row.role,
                granted_scopes=tuple(row.granted_scopes or ()),
                row_scope=row.row_scope,
                episodes=dict(zip(row.episode_patients, row.episode_ids, strict=True)),
            )


async def rotate_secret(
    db: RequestDatabase, session_id: uuid.UUID, *, now: datetime, overlap: timedelta
) -> str:
    """A new secret for a session's next tokens; the previous one stays good for the
    lifetime of the access tokens that carry it."""
    secret, digest = new_secret()
    await db.execute(
        update(sessions)
        .where(sessions.c.id == session_id)
        .values(
            previous_secret_hash=sessions.c.secret_hash,
            previous_secret_until=now + overlap,
            secret_hash=digest,
        )
    )
    return secret


async def create_session(db: RequestDatabase, values: Mapping[str, Any]) -> Row[Any]:
    row = await db.first(insert(sessions).values(**values).returning(sessions))
    assert row is not None
    return row


async def get_session(db: RequestDatabase, session_id: uuid.UUID) -> Row[Any] | None:
    return await db.first(select(sessions).where(sessions.c.id == session_id))


async def touch(db: RequestDatabase, session_id: uuid.UUID, *, now: datetime) -> None:
    await db.execute(update(sessions).where(sessions.c.id == session_id).values(last_seen_at=now))


async def revoke(db: RequestDatabase, session_id: uuid.UUID, *, now: datetime, reason: str) -> bool:
    row = await db.first(
        update(sessions)
        .where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
        .returning(sessions.c.id)
    )
    return row is not None


async def revoke_all_for_user(
    db: RequestDatabase, user_id: uuid.UUID, *, now: datetime, reason: str
) -> int:
    return await db.rowcount(
        update(sessions)
        .where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )


async def _lock_subject(db: RequestDatabase, subject: str) -> None:
    """Until the transaction ends: a subject's sign-out and the opening of a session for
    it one after the other (each statement sees the other's rows only once committed,
    so a session opened during a sign-out could escape it)."""
    await db.execute(
        select(func.pg_advisory_xact_lock(func.hashtextextended("phigate.external:" + subject, 0)))
    )


async def sign_out_external(
    db: RequestDatabase, subject: str, *, now: datetime, reason: str
) -> int | None:
    """Every live session an identity provider vouched for this subject ("oidc:…") ends,
    and tokens the provider issued until now open no new one. The number of sessions
    ended, or None for a subject that never had one (a typo, most likely)."""
    await _lock_subject(db, subject)
    if not await db.scalar(select(exists().where(sessions.c.external_subject == subject))):
        return None
    stored = upsert(external_sign_outs).values(subject=subject, signed_out_at=now)
    await db.execute(
        stored.on_conflict_do_update(
            index_elements=[external_sign_outs.c.subject],
            set_={"signed_out_at": func.greatest(external_sign_outs.c.signed_out_at, now)},
        )
    )
    return await db.rowcount(
        update(sessions)
        .where(sessions.c.external_subject == subject, sessions.c.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )


async def signed_out_after(db: RequestDatabase, subject: str, issued_at: datetime) -> bool:
    """Whether the subject was signed out at or after the moment a token of theirs was
    issued: such a token opens no session. In the transaction that would open it (the
    subject's lock is held until it ends)."""
    await _lock_subject(db, subject)
    return bool(
        await db.scalar(
            select(
                exists().where(
                    external_sign_outs.c.subject == subject,
                    external_sign_outs.c.signed_out_at >= issued_at,
                )
            )
        )
    )


async def revoke_all_for_client(
    db: RequestDatabase, client_id: str, *, now: datetime, reason: str
) -> int:
    return await db.rowcount(
        update(sessions)
        .where(sessions.c.client_id == client_id, sessions.c.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )


async def add_refresh_token(
    db: RequestDatabase, *, token_hash: str, session_id: uuid.UUID, now: datetime
) -> None:
    await db.execute(
        insert(refresh_tokens).values(token_hash=token_hash, session_id=session_id, issued_at=now)
    )


async def use_refresh_token(
    db: RequestDatabase, token_hash: str, *, now: datetime
) -> uuid.UUID | None:
    """Mark a refresh token used; its session id if it was unused, else None. Two
    requests racing with one token: exactly one gets the session."""
    row = await db.first(
        update(refresh_tokens)
        .where(refresh_tokens.c.token_hash == token_hash, refresh_tokens.c.used_at.is_(None))
        .values(used_at=now)
        .returning(refresh_tokens.c.session_id)
    )
    return row.session_id if row else None


async def find_refresh_token(db: RequestDatabase, token_hash: str) -> Row[Any] | None:
    return await db.first(select(refresh_tokens).where(refresh_tokens.c.token_hash == token_hash))
