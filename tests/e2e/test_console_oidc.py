"""The console's sign-in at an external OpenID Connect provider: authorization code with
PKCE, state and nonce, against a provider stand-in that checks what a real one checks
(the redirect URI, the S256 code challenge against the verifier, single-use codes) and
signs ID tokens with its own key."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from graph.http.app import create_app, engine_of, identity_of
from graph.http.console.cookie import COOKIE
from graph.settings import Settings
from tests.conftest import FAST_HASHING, TEST_KEYS
from tests.e2e.test_console import CONSOLE, COUNTS, ORIGIN, browser_like, fake_assets

ISSUER = "https://idp.synthetic.example"
CLIENT_ID = "phigate-console-synthetic"
KEY = RSAKey.generate_key(2048, parameters={"kid": "console-idp", "alg": "RS256"}, private=True)


class Provider(http.server.ThreadingHTTPServer):
    mode = "ok"
    codes: dict[str, dict[str, str]]
    exchanged: list[dict[str, str]]
    followed: list[str]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Provider

    def log_message(self, *args: object) -> None:
        pass

    def _json(self, status: int, body: dict) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        if self.path.startswith("/x"):  # where a redirecting token endpoint points
            self.server.followed.append(self.path)
            self._json(400, {"error": "invalid_request"})
            return
        query = {key: values[0] for key, values in parse_qs(urlsplit(self.path).query).items()}
        if query.get("client_id") != CLIENT_ID or query.get("response_type") != "code":
            self._json(400, {"error": "invalid_request"})
            return
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            self._json(400, {"error": "invalid_request", "error_description": "PKCE required"})
            return
        code = secrets.token_urlsafe(16)
        self.server.codes[code] = query
        answer = {"code": code, "state": query["state"]}
        if self.server.mode == "refuse":
            answer = {"error": "access_denied", "state": query["state"]}
        self.send_response(302)
        self.send_header("Location", f"{query['redirect_uri']}?{urlencode(answer)}")
        self.end_headers()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        self.server.exchanged.append(form)
        granted = self.server.codes.pop(form.get("code", ""), None)  # single use
        verifier = form.get("code_verifier", "")
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        if (
            granted is None
            or form.get("grant_type") != "authorization_code"
            or form.get("redirect_uri") != granted["redirect_uri"]
            or challenge != granted["code_challenge"]
        ):
            self._json(400, {"error": "invalid_grant"})
            return
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": CLIENT_ID,
            "sub": "00u-console-synthetic",
            "iat": now,
            "exp": now + 300,
            "nonce": granted["nonce"],
            "amr": ["pwd", "mfa"],
            "groups": ["phigate-analysts"],
        }
        if self.server.mode == "wrong_nonce":
            claims["nonce"] = "not-the-nonce-that-was-sent"
        if self.server.mode == "no_mfa":
            claims["amr"] = ["pwd"]
        if self.server.mode == "unmapped":
            claims["groups"] = ["everyone"]
        if self.server.mode == "other_audience":
            claims["aud"] = "some-other-client"
        if self.server.mode == "several_audiences":
            claims["aud"] = [CLIENT_ID, "some-other-client"]  # and no azp
        if self.server.mode == "long_subject":
            claims["sub"] = "s" * 120
        if self.server.mode == "redirect":
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{self.server.server_address[1]}/x")
            self.end_headers()
            return
        token = jwt.encode({"alg": "RS256", "kid": "console-idp"}, claims, KEY)
        self._json(200, {"id_token": token, "access_token": "opaque", "token_type": "Bearer"})


@pytest.fixture
def provider() -> Iterator[Provider]:
    server = Provider(("127.0.0.1", 0), _Handler)
    server.codes, server.exchanged, server.mode, server.followed = {}, [], "ok", []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


@pytest.fixture
async def oidc_app(app_target, tmp_path: Path, provider: Provider) -> AsyncIterator[Starlette]:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(KeySet([KEY]).as_dict(private=False)))
    base = f"http://127.0.0.1:{provider.server_address[1]}"
    settings = Settings(
        **TEST_KEYS,
        **FAST_HASHING,
        console_assets=fake_assets(tmp_path / "assets"),
        oidc_issuer=ISSUER,
        oidc_audience="phigate-api",
        oidc_jwks_file=jwks,
        oidc_role_map="phigate-analysts:ANALYST",
        oidc_console_client_id=CLIENT_ID,
        oidc_authorization_endpoint=f"{base}/authorize",
        oidc_token_endpoint=f"{base}/token",
    )._validated()
    application = create_app(settings, target=app_target)
    yield application
    await engine_of(application).dispose()


async def sign_in_at_provider(http: httpx.AsyncClient) -> httpx.Response:
    """The browser's trip: the console to the provider and back to the callback."""
    start = await http.get("/console/oidc/start")
    assert start.status_code == 303
    flow = start.headers["set-cookie"]
    assert flow.startswith("__Host-phigate-oidc=") and "SameSite=Lax" in flow
    assert "HttpOnly" in flow and "Secure" in flow
    async with httpx.AsyncClient() as outside:
        at_provider = await outside.get(start.headers["location"])
    assert at_provider.status_code == 302, at_provider.text
    back = urlsplit(at_provider.headers["location"])
    assert f"{back.scheme}://{back.netloc}" == ORIGIN
    return await http.get(f"{back.path}?{back.query}")


async def events(engine: AsyncEngine, action: str) -> list[dict]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT reason, actor_id, role FROM audit.events WHERE action = :a ORDER BY id"),
            {"a": action},
        )
        return [dict(row._mapping) for row in rows]


async def test_with_a_provider_the_console_signs_in_there_instead(oidc_app: Starlette):
    async with browser_like(oidc_app) as http:
        page = await http.get("/console")
        assert 'id="password-signin" class="signin-fields" hidden>' in page.text
        assert 'href="/console/oidc/start">' in page.text
        refused = await http.post(
            "/console/session",
            json={"username": "someone", "password": "x" * 12, "totp": "000000"},
            headers=CONSOLE,
        )
    assert refused.status_code == 403
    assert refused.json()["reason"] == "SIGN_IN_AT_PROVIDER"


async def test_sign_in_at_the_provider_opens_a_console_session(
    oidc_app: Starlette, provider: Provider, seeded: int
):
    async with browser_like(oidc_app) as http:
        done = await sign_in_at_provider(http)
        assert done.status_code == 303 and done.headers["location"] == "/console"
        assert COOKIE in http.cookies
        assert "access_token" not in done.text and "opaque" not in done.text
        # The code was exchanged with the verifier (the provider checked it) and a secret
        # the gateway never sent is not in the form.
        assert len(provider.exchanged) == 1 and provider.exchanged[0]["code_verifier"]
        assert "client_secret" not in provider.exchanged[0]
        facts = await http.get("/console/session", headers={"X-Phigate-Console": "1"})
        assert facts.status_code == 200
        assert facts.json()["role"] == "ANALYST"
        assert facts.json()["username"] == "oidc:00u-console-synthetic"
        counts = await http.post(
            "/graphql", json={"query": COUNTS}, headers={**CONSOLE, "X-Purpose-Of-Use": "RESEARCH"}
        )
        assert counts.json()["data"]["deidentifiedCounts"]["minimumCellSize"] == 11
        assert (await http.delete("/console/session", headers=CONSOLE)).status_code == 204
    logins = await events(engine_of(oidc_app), "LOGIN_SUCCEEDED")
    assert [(e["reason"], e["actor_id"], e["role"]) for e in logins] == [
        ("CONSOLE_OIDC", "oidc:00u-console-synthetic", "ANALYST")
    ]
    assert [e["actor_id"] for e in await events(engine_of(oidc_app), "LOGOUT")] == [
        "oidc:00u-console-synthetic"
    ]


async def test_a_provider_session_ends_when_idle(
    oidc_app: Starlette, provider: Provider, admin_engine: AsyncEngine
):
    async with browser_like(oidc_app) as http:
        assert (await sign_in_at_provider(http)).status_code == 303
        async with admin_engine.begin() as connection:
            await connection.execute(
                text(
                    "UPDATE phigate.sessions SET last_seen_at = now() - interval '16 minutes'"
                    " WHERE external_subject = 'oidc:00u-console-synthetic'"
                )
            )
        response = await http.post(
            "/graphql", json={"query": COUNTS}, headers={**CONSOLE, "X-Purpose-Of-Use": "RESEARCH"}
        )
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("wrong_nonce", "IDP_NONCE_MISMATCH"),
        ("no_mfa", "IDP_NO_MFA"),
        ("unmapped", "IDP_ROLE_UNMAPPED"),
        ("other_audience", "IDP_CLAIMS_INVALID_CLAIM"),
        ("refuse", "OIDC_PROVIDER_REFUSED"),
        # Found in review: each was accepted before its fix.
        ("several_audiences", "IDP_AZP_MISMATCH"),
        ("long_subject", "IDP_SUBJECT_TOO_LONG"),
        ("redirect", "IDP_CODE_REFUSED"),
    ],
)
async def test_what_the_provider_says_is_checked(
    oidc_app: Starlette, provider: Provider, mode: str, reason: str
):
    provider.mode = mode
    async with browser_like(oidc_app) as http:
        done = await sign_in_at_provider(http)
        assert done.status_code == 400
        assert "Sign-in was not completed" in done.text
        assert COOKIE not in http.cookies
    failures = await events(engine_of(oidc_app), "LOGIN_FAILED")
    assert [e["reason"] for e in failures] == [reason]
    assert provider.followed == []  # a redirecting token endpoint is never followed


async def test_a_callback_without_its_flow_or_with_another_state_is_refused(
    oidc_app: Starlette, provider: Provider
):
    async with browser_like(oidc_app) as http:
        start = await http.get("/console/oidc/start")
        async with httpx.AsyncClient() as outside:
            at_provider = await outside.get(start.headers["location"])
        back = urlsplit(at_provider.headers["location"])
        query = parse_qs(back.query)
        # Another state than the flow's (an attacker's callback URL, login CSRF).
        forged = await http.get(
            f"{back.path}?{urlencode({'code': query['code'][0], 'state': 'attacker-state'})}"
        )
        assert forged.status_code == 400
        assert COOKIE not in http.cookies
    async with browser_like(oidc_app) as fresh:
        # No flow cookie at all: a callback URL sent to a victim.
        lone = await fresh.get(f"{back.path}?{back.query}")
        assert lone.status_code == 400
        assert COOKIE not in fresh.cookies
    reasons = [e["reason"] for e in await events(engine_of(oidc_app), "LOGIN_FAILED")]
    assert reasons == ["OIDC_STATE_MISMATCH", "OIDC_NO_FLOW"]
    assert provider.exchanged == []  # no code was spent on a forged callback


def test_console_sign_in_at_a_provider_needs_its_endpoints():
    from graph.settings import SettingsError

    with pytest.raises(SettingsError, match="PHIGATE_OIDC_CONSOLE_CLIENT_ID needs"):
        Settings.from_env({**_env(), "PHIGATE_OIDC_TOKEN_ENDPOINT": ""})
    with pytest.raises(SettingsError, match="PHIGATE_OIDC_TOKEN_ENDPOINT must be an https"):
        Settings.from_env({**_env(), "PHIGATE_OIDC_TOKEN_ENDPOINT": "http://idp.example/token"})
    with pytest.raises(SettingsError, match="must include openid"):
        Settings.from_env({**_env(), "PHIGATE_OIDC_CONSOLE_SCOPES": "profile"})
    assert Settings.from_env(_env()).oidc_console_client_id == CLIENT_ID


def _env() -> dict[str, str]:
    return {
        "PHIGATE_MASTER_KEY": TEST_KEYS["master_key"],
        "PHIGATE_BLIND_INDEX_KEY": TEST_KEYS["blind_index_key"],
        "PHIGATE_OIDC_ISSUER": ISSUER,
        "PHIGATE_OIDC_AUDIENCE": "phigate-api",
        "PHIGATE_OIDC_JWKS_URL": "https://idp.synthetic.example/jwks",
        "PHIGATE_OIDC_ROLE_MAP": "phigate-analysts:ANALYST",
        "PHIGATE_OIDC_CONSOLE_CLIENT_ID": CLIENT_ID,
        "PHIGATE_OIDC_AUTHORIZATION_ENDPOINT": "https://idp.synthetic.example/authorize",
        "PHIGATE_OIDC_TOKEN_ENDPOINT": "https://idp.synthetic.example/token",
    }


async def test_an_administrator_ends_a_provider_session_and_it_ends_sooner(
    oidc_app: Starlette, provider: Provider, seeded: int
):
    """Found in review: a console session a provider vouched for kept its role for 12
    hours and no administrator could end it (`user sign-out` knew local accounts only)."""
    from resolvers.accounts import sign_out_user
    from resolvers.context import RequestMeta

    async with browser_like(oidc_app) as http:
        assert (await sign_in_at_provider(http)).status_code == 303
        facts = (await http.get("/console/session", headers={"X-Phigate-Console": "1"})).json()
        assert facts["absoluteRemainingSeconds"] <= 4 * 3600
        ctx = identity_of(oidc_app).context(RequestMeta(request_id="test-admin"))
        await sign_out_user(ctx, actor="test-operator", username="oidc:00u-console-synthetic")
        after = await http.post(
            "/graphql", json={"query": COUNTS}, headers={**CONSOLE, "X-Purpose-Of-Use": "RESEARCH"}
        )
    assert after.status_code == 401
    revoked = await events(engine_of(oidc_app), "USER_SESSIONS_REVOKED")
    assert [e["reason"] for e in revoked] == ["EXTERNAL:1"]


async def test_forged_provider_tokens_do_not_each_fetch_the_keys(
    oidc_app: Starlette, monkeypatch: pytest.MonkeyPatch
):
    """Found in review: every token claiming the provider's issuer and failing
    verification fetched the provider's keys again, before any rate limit."""
    trust = identity_of(oidc_app).oidc
    assert trust is not None
    fetched = []
    original = trust._fetch
    monkeypatch.setattr(trust, "_fetch", lambda: fetched.append(1) or original())
    forger = RSAKey.generate_key(2048, parameters={"kid": "forged-kid"}, private=True)
    now = int(time.time())
    async with browser_like(oidc_app) as http:
        for number in range(30):
            claims = {"iss": ISSUER, "aud": "phigate-api", "sub": f"x{number}", "exp": now + 60}
            kid = "console-idp" if number % 2 else f"forged-kid-{number}"
            token = jwt.encode({"alg": "RS256", "kid": kid}, claims, forger)
            response = await http.post(
                "/graphql",
                json={"query": "{ __typename }"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert response.status_code in (401, 429)
    # The first load, and at most one forced refetch within the minute.
    assert len(fetched) <= 2, len(fetched)
