"""Access tokens: ES256 only, checked for type, issuer, audience and lifetime; keys
published as JWKS and rotated without breaking live tokens."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey
from starlette.applications import Starlette

from domain.roles import Role
from graph.http.app import identity_of
from resolvers.tokens import TokenRejected, TokenService
from tests.e2e.test_login import claims_of
from tests.identity import issue_token

QUERY = {"query": "{ baas { id } }"}


async def status_with(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/graphql", json=QUERY, headers={"Authorization": f"Bearer {token}"})


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.fixture
async def valid(app: Starlette) -> str:
    return await issue_token(identity_of(app), Role.NURSE)


async def forge(
    app: Starlette,
    valid: str,
    *,
    header: dict | None = None,
    claims: dict | None = None,
    key: object = None,
    algorithm: str = "ES256",
) -> str:
    identity = identity_of(app)
    real_header, real_claims = claims_of(valid)
    signer = key or identity.tokens._keys[0].private
    return jwt.encode(
        {**real_header, **(header or {})},
        {**real_claims, **(claims or {})},
        signer,
        algorithms=[algorithm],
    )


async def test_a_valid_token_works(client: httpx.AsyncClient, valid: str) -> None:
    assert (await status_with(client, valid)).status_code == 200


@pytest.mark.parametrize(
    "tamper",
    [
        "expired",
        "not_yet_valid",
        "wrong_audience",
        "wrong_issuer",
        "plain_jwt_type",
        "foreign_key_same_kid",
        "alg_none",
        "hs256_with_public_key",
        "garbage",
        "claims_edited",
    ],
)
async def test_bad_tokens_are_refused_with_a_challenge(
    client: httpx.AsyncClient, app: Starlette, valid: str, tamper: str
) -> None:
    now = int(datetime.now(UTC).timestamp())
    header, claims = claims_of(valid)
    if tamper == "expired":
        token = await forge(
            app, valid, claims={"iat": now - 900, "nbf": now - 900, "exp": now - 600}
        )
    elif tamper == "not_yet_valid":
        token = await forge(app, valid, claims={"nbf": now + 600, "exp": now + 900})
    elif tamper == "wrong_audience":
        token = await forge(app, valid, claims={"aud": "some-other-api"})
    elif tamper == "wrong_issuer":
        token = await forge(app, valid, claims={"iss": "https://evil.example.test"})
    elif tamper == "plain_jwt_type":
        token = await forge(app, valid, header={"typ": "JWT"})
    elif tamper == "foreign_key_same_kid":
        token = await forge(app, valid, key=ECKey.generate_key("P-256"))
    elif tamper == "alg_none":
        token = f"{b64({**header, 'alg': 'none'})}.{b64(claims)}."
    elif tamper == "hs256_with_public_key":
        public = json.dumps(identity_of(app).tokens._keys[0].public.as_dict(private=False)).encode()
        token = await forge(
            app, valid, header={"alg": "HS256"}, key=OctKey.import_key(public), algorithm="HS256"
        )
    elif tamper == "garbage":
        token = "not.a.token"
    else:
        head, _, signature = valid.split(".")
        token = f"{head}.{b64({**claims, 'role': 'ADMIN'})}.{signature}"
    response = await status_with(client, token)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="phigate", error="invalid_token"'
    assert response.json()["error"] == "invalid_token"


async def test_a_token_for_a_session_that_never_existed_is_refused(
    client: httpx.AsyncClient, app: Starlette, valid: str
) -> None:
    token = await forge(app, valid, claims={"sid": str(uuid.uuid4())})
    assert (await status_with(client, token)).status_code == 401


async def test_missing_or_non_bearer_authorization(client: httpx.AsyncClient, valid: str) -> None:
    for headers in ({}, {"Authorization": f"Basic {valid}"}, {"Authorization": "Bearer"}):
        response = await client.post("/graphql", json=QUERY, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith('Bearer realm="phigate"')


async def test_public_endpoints_need_no_token(client: httpx.AsyncClient) -> None:
    for path in ("/health", "/ready", "/.well-known/jwks.json"):
        assert (await client.get(path)).status_code == 200


async def test_jwks_publishes_public_keys_only(client: httpx.AsyncClient, valid: str) -> None:
    keys = (await client.get("/.well-known/jwks.json")).json()["keys"]
    assert [key["kid"] for key in keys] == [claims_of(valid)[0]["kid"]]
    assert all(key["kty"] == "EC" and key["alg"] == "ES256" and "d" not in key for key in keys)


async def test_rotation_keeps_live_tokens_valid_and_signs_with_the_new_key(
    client: httpx.AsyncClient, app: Starlette, valid: str
) -> None:
    identity = identity_of(app)
    old_kid = claims_of(valid)[0]["kid"]
    new_kid = await identity.tokens.rotate(now=datetime.now(UTC))
    assert new_kid != old_kid
    assert (await status_with(client, valid)).status_code == 200
    fresh = await issue_token(identity, Role.NURSE)
    assert claims_of(fresh)[0]["kid"] == new_kid
    assert (await status_with(client, fresh)).status_code == 200
    published = {key["kid"] for key in (await client.get("/.well-known/jwks.json")).json()["keys"]}
    assert published == {old_kid, new_kid}


async def test_a_retired_key_leaves_the_jwks_once_its_tokens_have_expired(
    app: Starlette, valid: str
) -> None:
    identity = identity_of(app)
    rotated_at = datetime.now(UTC) - timedelta(hours=2)
    new_kid = await identity.tokens.rotate(now=rotated_at)
    assert [key["kid"] for key in (await identity.tokens.jwks())["keys"]] == [new_kid]


async def test_another_process_sees_a_rotation(app: Starlette, valid: str) -> None:
    """A second token service (another gateway process) verifies a token signed with a
    key it has never seen: an unknown kid triggers a reload from the database."""
    identity = identity_of(app)
    other = TokenService(
        identity.engine,
        envelope=identity.config.envelope,
        issuer="phigate",
        audience="phigate-api",
        access_ttl=timedelta(minutes=5),
    )
    await other.prepare()
    await identity.tokens.rotate(now=datetime.now(UTC))
    other._loaded_at -= 10  # past the minimum interval between forced reloads
    token = await issue_token(identity, Role.NURSE)
    assert (await other.verify(token, now=datetime.now(UTC)))["sub"]


async def test_a_token_verified_before_is_still_checked_for_expiry(
    app: Starlette, valid: str
) -> None:
    """Signatures already checked are remembered; the claims are checked every time."""
    tokens = identity_of(app).tokens
    now = datetime.now(UTC)
    assert (await tokens.verify(valid, now=now))["sub"]
    assert valid in tokens._verified
    with pytest.raises(TokenRejected, match="claims_"):
        await tokens.verify(valid, now=now + timedelta(hours=1))


async def test_a_remembered_token_is_refused_once_its_key_stops_verifying(
    app: Starlette, valid: str
) -> None:
    tokens = identity_of(app).tokens
    now = datetime.now(UTC)
    await tokens.verify(valid, now=now)
    # Rotated long ago: the key that signed `valid` is past its grace period.
    await tokens.rotate(now=now - timedelta(hours=2))
    with pytest.raises(TokenRejected):
        await tokens.verify(valid, now=now)


async def test_a_changed_token_is_never_taken_from_the_cache(app: Starlette, valid: str) -> None:
    tokens = identity_of(app).tokens
    await tokens.verify(valid, now=datetime.now(UTC))
    header, _payload, signature = valid.split(".")
    promoted = b64({**claims_of(valid)[1], "sid": str(uuid.uuid4())})
    with pytest.raises(TokenRejected, match="bad_signature"):
        await tokens.verify(f"{header}.{promoted}.{signature}", now=datetime.now(UTC))
