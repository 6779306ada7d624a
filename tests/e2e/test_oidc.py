"""Tokens from a trusted external OpenID Connect issuer, tested with a locally
generated IdP key set."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey, RSAKey
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from graph.execution.planner import PLANS
from graph.settings import Settings, SettingsError
from tests.conftest import BLIND_INDEX_KEY, FAST_HASHING, MASTER_KEY, StatementCounter
from tests.e2e.test_planned_execution import endpoint

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
        # Without it a sign-out could not tell the tokens issued before it.
        pytest.param(lambda: idp_token(iat=None), id="no-issued-at"),
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


# -- an identity provider's caller reads the way a local one does -------------------------

PAGE = "{ patients(first: 3) { edges { node { id givenName familyName } } } }"
ACCESS_ROWS = (
    "SELECT actor_id, actor_kind, role, session_id, purpose, field_path, data_class,"
    " record_ids FROM audit.events WHERE request_id = :r AND category = 'ACCESS'"
    " ORDER BY field_path"
)


async def _billing_read(client: httpx.AsyncClient, token: str, request_id: str) -> httpx.Response:
    return await client.post(
        "/graphql",
        json={"query": PAGE},
        headers={
            "Authorization": f"Bearer {token}",
            "X-Purpose-Of-Use": "PAYMENT",
            "X-Request-ID": request_id,
        },
    )


async def _access_rows(engine: AsyncEngine, request_id: str) -> list[Any]:
    async with engine.connect() as connection:
        return [
            tuple(row) for row in await connection.execute(text(ACCESS_ROWS), {"r": request_id})
        ]


async def test_an_idp_callers_repeated_read_is_one_statement_audited_as_the_first(
    client: httpx.AsyncClient,
    seeded: int,
    statements: StatementCounter,
    admin_engine: AsyncEngine,
) -> None:
    """The first read of an identity provider's token checks its session the usual way
    (BEGIN, the check, the read, COMMIT); the next ones check it inside the read's own
    statement, as a local caller's do, and are audited exactly as the first was."""
    token = idp_token(sub="00u2synthetic", groups=["phigate-billing"])
    first = await _billing_read(client, token, "idp-first")
    assert first.status_code == 200, first.text
    await _billing_read(client, token, "idp-second")  # the plan is learnt
    before, checked = statements.count, PLANS.checked
    third = await _billing_read(client, token, "idp-third")
    sent = statements.statements[before:]
    assert PLANS.checked == checked + 1
    assert len(sent) == 1 and "phigate.begin_request" in sent[0], sent
    assert third.json() == first.json()
    audited = await _access_rows(admin_engine, "idp-third")
    assert audited == await _access_rows(admin_engine, "idp-first")
    assert [row[:3] for row in audited] == [("oidc:00u2synthetic", "USER", "BILLING")] * 2


async def test_an_ended_idp_session_is_refused_at_once_and_nothing_is_read(
    client: httpx.AsyncClient, app: Starlette, seeded: int, admin_engine: AsyncEngine
) -> None:
    """The read's own statement finds the session revoked (the check left to it reads
    nothing), and the usual check then refuses the token."""
    # A subject of its own: the gateway keeps a token's session for the token's life,
    # and another test's token of the same second would be this one.
    token = idp_token(sub="00u3synthetic", groups=["phigate-billing"])
    for request_id in ("idp-before-1", "idp-before-2"):
        assert (await _billing_read(client, token, request_id)).status_code == 200
    async with admin_engine.begin() as connection:
        ended = await connection.execute(
            text(
                "UPDATE phigate.sessions SET revoked_at = now()"
                " WHERE external_subject = 'oidc:00u3synthetic' AND revoked_at IS NULL"
            )
        )
        assert ended.rowcount == 1
    fallbacks = endpoint(app).fallbacks

    def unchecked() -> int:
        return sum(n for reason, n in fallbacks.items() if reason.startswith("checked: "))

    before = unchecked()
    refused = await _billing_read(client, token, "idp-after")
    assert unchecked() == before + 1  # the deferred statement ran, and found no caller
    assert refused.status_code == 401
    assert await _access_rows(admin_engine, "idp-after") == []


async def test_a_signed_out_idp_subjects_token_opens_no_new_session(
    client: httpx.AsyncClient, app: Starlette, seeded: int
) -> None:
    """`phigate user sign-out oidc:<sub>` ends the subject's sessions, but the provider's
    token stays valid until it expires (often an hour). Presented to a gateway process
    that has not seen it (another worker, or this one once it forgot the token's
    session), it opened a new session and was served again. A token issued before the
    sign-out is now refused everywhere; one the provider issues after it is honoured."""
    from graph.http.app import identity_of
    from resolvers import auth
    from resolvers.accounts import sign_out_user
    from resolvers.context import RequestMeta

    now = int(time.time())
    token = idp_token(sub="00u4synthetic", groups=["phigate-billing"], iat=now - 600)
    assert (await _billing_read(client, token, "idp-out-before")).status_code == 200
    ctx = identity_of(app).context(RequestMeta(request_id="test-operator"))
    ctx.now -= timedelta(minutes=5)  # signed out five minutes ago: after the token's issue
    await sign_out_user(ctx, actor="test-operator", username="oidc:00u4synthetic")
    assert (await _billing_read(client, token, "idp-out-same")).status_code == 401
    auth._EXTERNAL_SESSIONS.clear()  # another process, or this one after the token's TTL
    refused = await _billing_read(client, token, "idp-out-elsewhere")
    assert refused.status_code == 401, refused.text
    # Issued within the clocks' leeway (30 s) of the sign-out: counted as before it.
    close = idp_token(sub="00u4synthetic", groups=["phigate-billing"], iat=now - 290)
    assert (await _billing_read(client, close, "idp-out-close")).status_code == 401
    later = idp_token(sub="00u4synthetic", groups=["phigate-billing"], iat=now)
    assert (await _billing_read(client, later, "idp-out-new-sign-in")).status_code == 200
