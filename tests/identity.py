"""Helpers for tests that need an authenticated caller."""

from __future__ import annotations

import base64
import itertools
import json
import uuid
from datetime import UTC, datetime

import pyotp

from db import sessions
from db.unit_of_work import RequestDatabase
from domain.roles import Role
from graph.identity import Identity
from resolvers import accounts
from resolvers.auth import ClientSession
from resolvers.context import RequestMeta

PASSWORD = "synthetic test passphrase 1"


def token_claims(token: str) -> dict:
    """What anyone holding an access token can read out of it (a JWT's payload is
    encoded, not encrypted): its session's id and secret among them."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))  # type: ignore[no-any-return]


_numbers = itertools.count(1)


async def create_user(
    identity: Identity, role: Role, username: str | None = None
) -> tuple[str, str]:
    """A user with a known TOTP secret; returns (user id, secret)."""
    secret = pyotp.random_base32()
    ctx = identity.context(RequestMeta(request_id="test-setup"))
    enrolled = await accounts.create_user(
        ctx,
        actor="test",
        username=username or f"test.{role.value.lower()}.{next(_numbers)}",
        role=role,
        password=PASSWORD,
        totp_secret=secret,
    )
    return enrolled.user_id, secret


async def issue_token(identity: Identity, role: Role = Role.COMPLIANCE_OFFICER) -> str:
    user_id, _ = await create_user(identity, role)
    return await session_token(identity, user_id, role)


async def session_token(identity: Identity, user_id: str, role: Role) -> str:
    """A new session of an existing user, and an access token for it."""
    now = datetime.now(UTC)
    secret, digest = sessions.new_secret()
    db = RequestDatabase(identity.engine)
    try:
        session = await sessions.create_session(
            db,
            {
                "user_id": uuid.UUID(user_id),
                "secret_hash": digest,
                "created_at": now,
                "last_seen_at": now,
                "expires_at": now + identity.config.session.absolute,
            },
        )
        await db.commit()
    finally:
        await db.close()
    return await identity.tokens.mint(
        user_id,
        {"sid": str(session.id), sessions.SECRET_CLAIM: secret, "role": role.value},
        now=now,
    )


async def service_token(identity: Identity, scopes: tuple[str, ...]) -> str:
    ctx = identity.context(RequestMeta(request_id="test-setup"))
    registered = await accounts.create_client(
        ctx, actor="test", name=f"Example service {next(_numbers)}", scopes=list(scopes)
    )
    now = datetime.now(UTC)
    session = ClientSession()
    db = RequestDatabase(identity.engine)
    try:
        await session.store(
            db, client_id=registered.client_id, now=now, lifetime=identity.config.access_ttl
        )
        await db.commit()
    finally:
        await db.close()
    return await identity.tokens.mint(
        registered.client_id,
        {
            "client_id": registered.client_id,
            "scope": " ".join(sorted(scopes)),
            **session.claims(),
        },
        now=now,
    )
