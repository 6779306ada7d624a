"""Access tokens: JWTs signed with ES256 by keys kept (private halves encrypted) in the
database, so every gateway process signs and verifies with the same set."""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cachetools import TLRUCache
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet
from joserfc.jws import extract_compact
from sqlalchemy.ext.asyncio import AsyncEngine

from db import signing_keys
from db.crypto import Envelope, associated_data
from db.unit_of_work import RequestDatabase

ALGORITHM = "ES256"
TOKEN_TYPE = "at+jwt"  # RFC 9068: an access token, not any JWT
LEEWAY_SECONDS = 30
KEY_CACHE_SECONDS = 60
MIN_FORCED_RELOAD_SECONDS = 5


VERIFIED_TOKENS = 4096


def _until_expiry(_token: str, verified: tuple[str | None, dict[str, Any]], _now: float) -> float:
    return float(verified[1].get("exp", 0)) + LEEWAY_SECONDS


class TokenRejected(Exception):
    """The presented token is not acceptable. ``reason`` is a code for the audit trail."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Key:
    kid: str
    public: ECKey
    private: ECKey
    created_at: datetime
    retired_at: datetime | None


class TokenService:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        envelope: Envelope,
        issuer: str,
        audience: str,
        access_ttl: timedelta,
    ) -> None:
        self._engine = engine
        self._envelope = envelope
        self.issuer = issuer
        self.audience = audience
        self.access_ttl = access_ttl
        self._keys: list[_Key] = []
        self._loaded_at = 0.0
        # token -> (kid, claims) for signatures already checked, kept until expiry.
        self._verified: TLRUCache[str, tuple[str | None, dict[str, Any]]] = TLRUCache(
            maxsize=VERIFIED_TOKENS, ttu=_until_expiry, timer=time.time
        )

    # -- keys -------------------------------------------------------------------------
    async def _load(self) -> None:
        db = RequestDatabase(self._engine)
        try:
            rows = await signing_keys.all_keys(db)
            if not any(row.retired_at is None for row in rows):
                await signing_keys.lock_for_creation(db)
                rows = await signing_keys.all_keys(db)  # another process may have won
                if not any(row.retired_at is None for row in rows):
                    await self._create_key(db, now=datetime.now(UTC))
                    rows = await signing_keys.all_keys(db)
            await db.commit()
        finally:
            await db.close()
        self._keys = [self._decode(row) for row in rows]
        self._loaded_at = time.monotonic()

    def _decode(self, row: Any) -> _Key:
        pem = self._envelope.decrypt(
            row.private_key_ciphertext, aad=associated_data("signing_keys", "private_key", row.kid)
        )
        private = ECKey.import_key(pem, parameters={"kid": row.kid, "alg": ALGORITHM, "use": "sig"})
        public = ECKey.import_key(row.public_jwk)
        return _Key(row.kid, public, private, row.created_at, row.retired_at)

    async def _create_key(self, db: RequestDatabase, *, now: datetime) -> str:
        kid = f"{now:%Y%m%d}-{secrets.token_hex(4)}"
        key = ECKey.generate_key(
            "P-256", parameters={"kid": kid, "alg": ALGORITHM, "use": "sig"}, private=True
        )
        pem = key.as_pem(private=True)
        await signing_keys.insert_key(
            db,
            {
                "kid": kid,
                "algorithm": ALGORITHM,
                "public_jwk": key.as_dict(private=False),
                "private_key_ciphertext": self._envelope.encrypt(
                    pem, aad=associated_data("signing_keys", "private_key", kid)
                ),
                "created_at": now,
            },
        )
        return kid

    async def rotate(self, *, now: datetime) -> str:
        """A new signing key; the previous ones stop signing but keep verifying until
        the tokens they signed have expired."""
        db = RequestDatabase(self._engine)
        try:
            await signing_keys.lock_for_creation(db)
            kid = await self._create_key(db, now=now)
            await signing_keys.retire_all_but(db, kid, now=now)
            await db.commit()
        finally:
            await db.close()
        await self._load()
        return kid

    async def _current_keys(self, *, force: bool = False) -> list[_Key]:
        age = time.monotonic() - self._loaded_at
        if not self._keys or age > KEY_CACHE_SECONDS or (force and age > MIN_FORCED_RELOAD_SECONDS):
            await self._load()
        return self._keys

    def _verifying(self, keys: list[_Key], now: datetime) -> list[_Key]:
        # A retired key verifies while tokens it may have signed can still be alive:
        # their lifetime, plus how long another process may keep signing with it.
        grace = self.access_ttl + timedelta(seconds=KEY_CACHE_SECONDS + LEEWAY_SECONDS)
        return [k for k in keys if k.retired_at is None or now < k.retired_at + grace]

    async def jwks(self) -> dict[str, Any]:
        keys = self._verifying(await self._current_keys(), datetime.now(UTC))
        return {"keys": [key.public.as_dict(private=False) for key in keys]}

    # -- tokens -----------------------------------------------------------------------
    async def prepare(self) -> None:
        """Load (or refresh) the keys, so that ``sign`` can run without awaiting."""
        await self._current_keys()

    async def mint(self, subject: str, claims: dict[str, Any], *, now: datetime) -> str:
        await self.prepare()
        return self.sign(subject, claims, now=now)

    def sign(self, subject: str, claims: dict[str, Any], *, now: datetime) -> str:
        keys = self._keys
        signer = max((k for k in keys if k.retired_at is None), key=lambda k: (k.created_at, k.kid))
        issued = int(now.timestamp())
        payload = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "iat": issued,
            "nbf": issued,
            "exp": issued + int(self.access_ttl.total_seconds()),
            "jti": uuid.uuid4().hex,
            **claims,
        }
        header = {"alg": ALGORITHM, "kid": signer.kid, "typ": TOKEN_TYPE}
        return jwt.encode(header, payload, signer.private, algorithms=[ALGORITHM])

    async def sign_statement(self, claims: dict[str, Any], *, kind: str, now: datetime) -> str:
        """A signed statement that is not an access token (its ``typ`` says what it is,
        so it can never pass as one): e.g. an audit checkpoint."""
        await self.prepare()
        signer = max(
            (k for k in self._keys if k.retired_at is None), key=lambda k: (k.created_at, k.kid)
        )
        header = {"alg": ALGORITHM, "kid": signer.kid, "typ": kind}
        return jwt.encode(
            header,
            {"iss": self.issuer, "iat": int(now.timestamp()), **claims},
            signer.private,
            algorithms=[ALGORITHM],
        )

    async def verify_statement(self, token: str, *, kind: str) -> dict[str, Any]:
        """Any key ever used verifies a statement: checkpoints outlive key rotations."""
        keys = await self._current_keys(force=True)
        try:
            decoded = jwt.decode(token, KeySet([k.public for k in keys]), algorithms=[ALGORITHM])
        except (JoseError, ValueError):
            raise TokenRejected("bad_signature") from None
        if decoded.header.get("typ") != kind or decoded.claims.get("iss") != self.issuer:
            raise TokenRejected("wrong_statement")
        return decoded.claims

    async def verify(self, token: str, *, now: datetime) -> dict[str, Any]:
        """Signature (ES256 only), type, issuer, audience, expiry and not-before."""
        keys = self._verifying(await self._current_keys(), now)
        verified = self._verified.get(token)
        # The same string carries the same signature: it is checked once, and again only
        # if its key stops verifying. The claims (expiry first) are checked every time.
        fresh = verified is None or verified[0] not in {k.kid for k in keys}
        if fresh:
            kid, claims = await self._check_signature(token, keys, now)
        else:
            kid, claims = verified
        registry = jwt.JWTClaimsRegistry(
            now=int(now.timestamp()),
            leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.audience},
            sub={"essential": True},
            exp={"essential": True},
            jti={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as error:
            raise TokenRejected(f"claims_{error.error}") from None
        if fresh:
            self._verified[token] = (kid, claims)
        return dict(claims)

    async def _check_signature(
        self, token: str, keys: list[_Key], now: datetime
    ) -> tuple[str | None, dict[str, Any]]:
        try:
            kid = extract_compact(token.encode()).headers().get("kid")
        except JoseError:
            raise TokenRejected("malformed") from None
        if kid not in {k.kid for k in keys}:
            # Perhaps a key another process created since our last look.
            keys = self._verifying(await self._current_keys(force=True), now)
        try:
            decoded = jwt.decode(token, KeySet([k.public for k in keys]), algorithms=[ALGORITHM])
        except (JoseError, ValueError):
            raise TokenRejected("bad_signature") from None
        if decoded.header.get("typ") != TOKEN_TYPE:
            raise TokenRejected("wrong_token_type")
        return kid, decoded.claims
