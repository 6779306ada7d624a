"""Trusting an external OpenID Connect issuer (Okta, Cognito, Entra ID): its tokens
are verified with its published keys, must carry our audience, must say MFA was used,
and map to one of our roles through a configured claim."""

from __future__ import annotations

import base64
import hmac
import json
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from domain.principals import Human
from domain.roles import Role
from resolvers.tokens import LEEWAY_SECONDS, TokenRejected

# Asymmetric only: an HMAC algorithm would let anyone holding the public JWKS sign.
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384"]
# RFC 8176 authentication method references that mean a second factor was used.
MFA_METHODS = frozenset({"mfa", "otp", "hwk", "swk", "sms", "tel", "fpt", "face", "iris"})
JWKS_REFRESH_SECONDS = 600
# A token that fails verification may mean the provider rotated its keys: refetch, but
# only for a key id the set does not hold, and at most this often (a flood of forged
# tokens must not become a flood of fetches).
JWKS_FORCED_REFRESH_SECONDS = 60
# "oidc:" and the subject fit the 100 characters actor columns hold.
MAX_SUBJECT = 95
JWKS_FETCH_TIMEOUT = 5


class OidcConfigurationError(ValueError):
    pass


def parse_role_map(raw: str) -> dict[str, Role]:
    """``"idp-group:ROLE,other-group:ROLE"``."""
    mapping: dict[str, Role] = {}
    for item in (part.strip() for part in raw.split(",") if part.strip()):
        claim_value, _, role = item.rpartition(":")
        try:
            mapping[claim_value] = Role(role)
        except ValueError:
            known = ", ".join(r.value for r in Role)
            raise OidcConfigurationError(
                f"PHIGATE_OIDC_ROLE_MAP names an unknown role; roles are {known}"
            ) from None
        if not claim_value:
            raise OidcConfigurationError("PHIGATE_OIDC_ROLE_MAP entries look like group-name:ROLE")
    if not mapping:
        raise OidcConfigurationError(
            "PHIGATE_OIDC_ROLE_MAP must map at least one claim value to a role"
        )
    return mapping


@dataclass
class OidcTrust:
    issuer: str
    audience: str
    role_claim: str
    role_map: dict[str, Role]
    require_mfa: bool = True
    jwks_file: Path | None = None
    jwks_url: str | None = None
    _keys: KeySet | None = field(default=None, init=False, repr=False)
    _loaded_at: float = field(default=0.0, init=False, repr=False)
    _forced_at: float = field(default=-JWKS_FORCED_REFRESH_SECONDS, init=False, repr=False)

    def _fetch(self) -> dict[str, Any]:
        if self.jwks_file is not None:
            return json.loads(self.jwks_file.read_text(encoding="utf-8"))
        assert self.jwks_url is not None
        if not self.jwks_url.startswith("https://"):
            raise OidcConfigurationError("PHIGATE_OIDC_JWKS_URL must be https")
        with urllib.request.urlopen(self.jwks_url, timeout=JWKS_FETCH_TIMEOUT) as response:  # noqa: S310 - https only
            return json.loads(response.read())

    async def keys(self, *, force: bool = False) -> KeySet:
        stale = time.monotonic() - self._loaded_at > JWKS_REFRESH_SECONDS
        if self._keys is None or stale or force:
            try:
                self._keys = KeySet.import_key_set(await anyio.to_thread.run_sync(self._fetch))
                self._loaded_at = time.monotonic()
            except (OSError, ValueError, JoseError):
                if self._keys is None:  # keep serving with the last good set
                    raise TokenRejected("idp_keys_unavailable") from None
        return self._keys

    def _may_refetch_for(self, token: str, keys: KeySet) -> bool:
        """Whether a token that failed verification justifies fetching the keys again: its
        key id is one the set lacks, and no forced fetch happened within the minute."""
        kid = _unverified_kid(token)
        if kid is None or any(key.kid == kid for key in keys.keys):
            return False
        now = time.monotonic()
        if now - self._forced_at < JWKS_FORCED_REFRESH_SECONDS:
            return False
        self._forced_at = now
        return True

    async def verify(
        self, token: str, *, now: datetime, audience: str | None = None, nonce: str | None = None
    ) -> Human:
        """The caller an issuer's token names. An access token for the API carries our
        audience; an ID token from the console's sign-in carries the console's client id
        and the nonce the sign-in sent, which must match."""
        keys = await self.keys()
        try:
            decoded = jwt.decode(token, keys, algorithms=ALGORITHMS)
        except (JoseError, ValueError):
            if not self._may_refetch_for(token, keys):
                raise TokenRejected("idp_bad_signature") from None
            try:  # the IdP may have rotated its keys
                decoded = jwt.decode(token, await self.keys(force=True), algorithms=ALGORITHMS)
            except (JoseError, ValueError):
                raise TokenRejected("idp_bad_signature") from None
        registry = jwt.JWTClaimsRegistry(
            now=int(now.timestamp()),
            leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": audience or self.audience},
            sub={"essential": True},
            exp={"essential": True},
            # When it was issued: a token from before its subject's sign-out opens no
            # session (RFC 9068 and OIDC Core require it in access and ID tokens).
            iat={"essential": True},
        )
        try:
            registry.validate(decoded.claims)
        except JoseError as error:
            raise TokenRejected(f"idp_claims_{error.error}") from None
        claims = decoded.claims
        if nonce is not None and not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
            raise TokenRejected("idp_nonce_mismatch")
        audiences = claims.get("aud")
        # OIDC Core 3.1.3.7: an ID token for several audiences names the one it was issued to.
        several = isinstance(audiences, list) and len(audiences) > 1
        if audience is not None and several and claims.get("azp") != audience:
            raise TokenRejected("idp_azp_mismatch")
        if len(str(claims["sub"])) > MAX_SUBJECT:
            # Cut short, two subjects could become one actor in the audit trail.
            raise TokenRejected("idp_subject_too_long")
        if self.require_mfa and not MFA_METHODS & set(claims.get("amr") or ()):
            raise TokenRejected("idp_no_mfa")
        values = claims.get(self.role_claim)
        values = [values] if isinstance(values, str) else list(values or ())
        roles = {self.role_map[value] for value in values if value in self.role_map}
        if len(roles) != 1:
            # None mapped, or several: refuse rather than guess which privileges apply.
            raise TokenRejected("idp_role_unmapped" if not roles else "idp_role_ambiguous")
        return Human(
            user_id=f"oidc:{claims['sub']}", role=roles.pop(), session_id=None, source="oidc"
        )


def _claims(token: str) -> dict[str, Any] | None:
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


def unverified_issuer(token: str) -> str | None:
    """Which issuer a token claims, to pick the verifier. Never trusted on its own."""
    issuer = (_claims(token) or {}).get("iss")
    return issuer if isinstance(issuer, str) else None


def issued_at(token: str) -> datetime:
    """When the provider issued a token that ``verify`` accepted (which requires ``iat``):
    only for a verified token."""
    issued = (_claims(token) or {}).get("iat")
    if isinstance(issued, bool) or not isinstance(issued, int | float):
        raise TokenRejected("idp_claims_invalid_claim")
    return datetime.fromtimestamp(issued, UTC)


def _unverified_kid(token: str) -> str | None:
    try:
        header = token.split(".")[0]
        decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (IndexError, ValueError, UnicodeDecodeError):
        return None
    kid = decoded.get("kid") if isinstance(decoded, dict) else None
    return kid if isinstance(kid, str) else None
