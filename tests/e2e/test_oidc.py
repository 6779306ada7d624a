"""Tokens from a trusted external OpenID Connect issuer, tested with a locally
generated IdP key set."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey, RSAKey

from graph.settings import Settings, SettingsError
from tests.conftest import BLIND_INDEX_KEY, FAST_HASHING, MASTER_KEY

ISSUER = "https://idp.example.test/oauth2/default"
AUDIENCE = "api://phigate"
IDP_KEY = RSAKey.generate_key(
    2048, parameters={"kid": "idp-key-1", "alg": "RS256", "use": "sig"}, private=True
)
QUERY = {"query": "{ baas { id } }"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    jwks = tmp_path / "idp-jwks.json"
    jwks.write_text(json.dumps(KeySet([IDP_KEY]).as_dict(private=False)))
    return Settings(
        master_key=MASTER_KEY,
        blind_index_key=BLIND_INDEX_KEY,
        **FAST_HASHING,
        oidc_issuer=ISSUER,
        oidc_audience=AUDIENCE,
        oidc_jwks_file=jwks,
        oidc_role_claim="groups",
        oidc_role_map="phigate-nurses:NURSE,phigate-billing:BILLING",
    )


def idp_token(key: object = IDP_KEY, algorithm: str = "RS256", **overrides: object) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "00u1synthetic",
        "iat": now,
        "exp": now + 300,
        "amr": ["pwd", "mfa"],
        "groups": ["everyone", "phigate-nurses"],
    }
    claims.update(overrides)
    claims = {name: value for name, value in claims.items() if value is not None}
    return jwt.encode({"alg": algorithm, "kid": "idp-key-1"}, claims, key, algorithms=[algorithm])


async def call(client: httpx.AsyncClient, token: str) -> int:
    return (
        await client.post("/graphql", json=QUERY, headers={"Authorization": f"Bearer {token}"})
    ).status_code


async def test_a_trusted_idp_token_is_accepted(client: httpx.AsyncClient) -> None:
    assert await call(client, idp_token()) == 200


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(lambda: idp_token(aud="some-other-api"), id="wrong-audience"),
        pytest.param(lambda: idp_token(exp=int(time.time()) - 600), id="expired"),
        pytest.param(lambda: idp_token(amr=["pwd"]), id="no-mfa"),
        pytest.param(lambda: idp_token(amr=None), id="no-amr"),
        pytest.param(lambda: idp_token(groups=["everyone"]), id="no-mapped-role"),
        pytest.param(
            lambda: idp_token(groups=["phigate-nurses", "phigate-billing"]), id="ambiguous-role"
        ),
        pytest.param(
            lambda: idp_token(key=RSAKey.generate_key(2048, private=True)),
            id="signed-by-someone-else",
        ),
        pytest.param(
            lambda: idp_token(
                key=OctKey.import_key(json.dumps(IDP_KEY.as_dict(private=False)).encode()),
                algorithm="HS256",
            ),
            id="hmac-with-the-public-key",
        ),
    ],
)
async def test_untrustworthy_idp_tokens_are_refused(client: httpx.AsyncClient, token) -> None:
    assert await call(client, token()) == 401


def test_configuration_is_validated(tmp_path: Path) -> None:
    from graph.identity import oidc_trust

    with pytest.raises(SettingsError, match="JWKS"):
        Settings.from_env({"PHIGATE_OIDC_ISSUER": ISSUER, "PHIGATE_OIDC_AUDIENCE": AUDIENCE})
    with pytest.raises(SettingsError, match="unknown role"):
        oidc_trust(
            Settings(
                oidc_issuer=ISSUER,
                oidc_audience=AUDIENCE,
                oidc_jwks_file=tmp_path / "k",
                oidc_role_map="g:SUPERUSER",
            )
        )
