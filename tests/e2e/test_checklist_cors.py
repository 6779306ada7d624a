"""Checklist I9 (CORS): only listed origins, never a wildcard for origins, headers or
methods, and the lists a browser is given are exactly the intended ones."""

from __future__ import annotations

import httpx
import pytest

from graph.settings import Settings, SettingsError
from tests.conftest import FAST_HASHING, TEST_KEYS

FRONTEND = "https://app.example.test"
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type, x-purpose-of-use",
}


@pytest.fixture
def settings() -> Settings:
    return Settings(**TEST_KEYS, **FAST_HASHING, cors_origins=(FRONTEND,))


@pytest.mark.parametrize(
    "origins",
    ["*", "https://*.example.test", "null", "app.example.test", "https://app.example.test/x"],
)
def test_I9_wildcards_and_malformed_origins_are_refused(origins: str) -> None:
    with pytest.raises(SettingsError, match="PHIGATE_CORS_ORIGINS must list exact origins"):
        Settings.from_env({"PHIGATE_CORS_ORIGINS": f"{FRONTEND},{origins}"})


async def test_I9_a_listed_origin_gets_explicit_methods_and_headers(
    client: httpx.AsyncClient,
) -> None:
    allowed = await client.options("/graphql", headers={**PREFLIGHT, "Origin": FRONTEND})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == FRONTEND
    assert allowed.headers["access-control-allow-methods"] == "GET, POST"
    headers = {
        h.strip().lower() for h in allowed.headers["access-control-allow-headers"].split(",")
    }
    # Starlette adds the CORS-safelisted request headers to the configured ones.
    assert headers == {
        "authorization",
        "content-type",
        "x-purpose-of-use",
        "x-break-glass-reason",
        "x-request-id",
        "accept",
        "accept-language",
        "content-language",
    }
    assert "*" not in allowed.headers["access-control-allow-headers"]
    assert "access-control-allow-credentials" not in allowed.headers
    assert allowed.headers["vary"].lower().count("origin") == 1


@pytest.mark.parametrize(
    ("method", "request_headers"),
    [("DELETE", "content-type"), ("PUT", "content-type"), ("POST", "x-evil, content-type")],
)
async def test_I9_methods_and_headers_outside_the_lists_are_refused(
    client: httpx.AsyncClient, method: str, request_headers: str
) -> None:
    refused = await client.options(
        "/graphql",
        headers={
            "Origin": FRONTEND,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": request_headers,
        },
    )
    assert refused.status_code == 400


async def test_I9_an_unlisted_origin_gets_no_cors_headers(client: httpx.AsyncClient) -> None:
    for origin in ("https://evil.example.test", "null", f"{FRONTEND}.evil.example.test"):
        preflight = await client.options("/graphql", headers={**PREFLIGHT, "Origin": origin})
        assert "access-control-allow-origin" not in preflight.headers
        simple = await client.get("/health", headers={"Origin": origin})
        assert "access-control-allow-origin" not in simple.headers
