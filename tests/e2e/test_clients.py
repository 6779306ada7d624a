"""Services: the OAuth2 client-credentials grant (RFC 6749 §4.4)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from graph.http.app import identity_of
from resolvers import accounts
from resolvers.context import RequestMeta
from tests.e2e.test_login import claims_of, events

QUERY = {"query": "{ baas { id } }"}


async def register(
    app: Starlette,
    *,
    scopes: tuple[str, ...] = ("patients:read", "baas:read"),
    allow_ip: tuple[str, ...] = (),
) -> accounts.RegisteredClient:
    ctx = identity_of(app).context(RequestMeta("test"))
    return await accounts.create_client(
        ctx,
        actor="test",
        name=f"Example interface {len(allow_ip)}{scopes[0]}",
        scopes=scopes,
        allow_ip=allow_ip,
    )


async def token(
    client: httpx.AsyncClient, client_id: str, secret: str, **form: str
) -> httpx.Response:
    return await client.post(
        "/oauth/token", data={"grant_type": "client_credentials", **form}, auth=(client_id, secret)
    )


async def test_client_credentials_issue_a_scoped_token_that_works(
    client: httpx.AsyncClient, app: Starlette, app_engine: AsyncEngine
) -> None:
    registered = await register(app)
    response = await token(client, registered.client_id, registered.client_secret)
    assert response.status_code == 200
    body = response.json()
    assert (
        body["token_type"] == "Bearer" and body["expires_in"] == 300 and "refresh_token" not in body
    )
    assert body["scope"] == "baas:read patients:read"
    _, claims = claims_of(body["access_token"])
    assert claims["sub"] == claims["client_id"] == registered.client_id
    # The token names a session of its own, which the database checks on every request
    # (and which sets its row context); it lives as long as the token.
    async with app_engine.connect() as connection:
        session = (
            await connection.execute(
                text(
                    "SELECT client_id, expires_at - created_at AS life FROM phigate.sessions"
                    " WHERE id = :id"
                ),
                {"id": claims["sid"]},
            )
        ).one()
    assert session.client_id == registered.client_id and session.life.total_seconds() == 300
    graphql = await client.post(
        "/graphql", json=QUERY, headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert graphql.status_code == 200
    assert "CLIENT_TOKEN_ISSUED" in [e["action"] for e in await events(app_engine)]
    dump = str(await events(app_engine))
    assert registered.client_secret not in dump and body["access_token"] not in dump


async def test_secret_in_the_form_body_works_too(client: httpx.AsyncClient, app: Starlette) -> None:
    registered = await register(app)
    response = await client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": registered.client_id,
            "client_secret": registered.client_secret,
            "scope": "baas:read",
        },
    )
    assert response.status_code == 200 and response.json()["scope"] == "baas:read"


@pytest.mark.parametrize(
    ("case", "status", "error"),
    [
        ("wrong_secret", 401, "invalid_client"),
        ("unknown_client", 401, "invalid_client"),
        ("scope_not_granted", 400, "invalid_scope"),
        ("unknown_scope", 400, "invalid_scope"),
        ("password_grant", 400, "unsupported_grant_type"),
    ],
)
async def test_refusals(
    client: httpx.AsyncClient,
    app: Starlette,
    app_engine: AsyncEngine,
    case: str,
    status: int,
    error: str,
) -> None:
    registered = await register(app)
    if case == "wrong_secret":
        response = await token(client, registered.client_id, "not-the-secret")
    elif case == "unknown_client":
        response = await token(client, "svc_doesnotexist", registered.client_secret)
    elif case == "scope_not_granted":
        response = await token(
            client, registered.client_id, registered.client_secret, scope="audit:read"
        )
    elif case == "unknown_scope":
        response = await token(
            client, registered.client_id, registered.client_secret, scope="everything"
        )
    else:
        response = await client.post(
            "/oauth/token",
            data={"grant_type": "password", "username": "x", "password": "y"},
            auth=(registered.client_id, registered.client_secret),
        )
    assert response.status_code == status
    assert response.json()["error"] == error
    assert "access_token" not in response.json()
    assert [e["action"] for e in await events(app_engine)][-1] == "CLIENT_AUTH_FAILED"


@pytest.mark.parametrize(
    ("allowed", "issued"),
    [(("203.0.113.0/24",), True), (("198.51.100.0/24", "2001:db8::/32"), False)],
)
async def test_ip_allowlist(
    client: httpx.AsyncClient,
    app: Starlette,
    app_engine: AsyncEngine,
    allowed: tuple[str, ...],
    issued: bool,
) -> None:
    registered = await register(app, allow_ip=allowed)  # the test client calls from 203.0.113.7
    response = await token(client, registered.client_id, registered.client_secret)
    assert (response.status_code == 200) is issued
    if not issued:
        assert response.json()["error"] == "invalid_client"
        assert (await events(app_engine))[-1]["reason"] == "IP_NOT_ALLOWED"


async def test_a_disabled_client_is_out_at_once(
    client: httpx.AsyncClient, app: Starlette, admin_engine: AsyncEngine
) -> None:
    registered = await register(app)
    access = (await token(client, registered.client_id, registered.client_secret)).json()[
        "access_token"
    ]
    async with admin_engine.begin() as connection:
        await connection.execute(
            text("UPDATE phigate.oauth_clients SET status = 'DISABLED' WHERE client_id = :c"),
            {"c": registered.client_id},
        )
    assert (
        await client.post("/graphql", json=QUERY, headers={"Authorization": f"Bearer {access}"})
    ).status_code == 401
    assert (await token(client, registered.client_id, registered.client_secret)).status_code == 401


async def test_token_endpoint_wants_a_form(client: httpx.AsyncClient) -> None:
    response = await client.post("/oauth/token", json={"grant_type": "client_credentials"})
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


async def test_plain_http_beyond_localhost_is_refused(app: Starlette) -> None:
    registered = await register(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://gateway.example.test"
    ) as remote:
        response = await token(remote, registered.client_id, registered.client_secret)
    assert response.status_code == 400 and response.json()["error"] == "insecure_transport"


async def test_client_registration_rules(app: Starlette) -> None:
    from domain.errors import InvalidInput

    ctx = identity_of(app).context(RequestMeta("test"))
    with pytest.raises(InvalidInput):
        await accounts.create_client(ctx, actor="test", name="x", scopes=["everything"])
    with pytest.raises(InvalidInput):
        await accounts.create_client(
            ctx, actor="test", name="x", scopes=["baas:read"], allow_ip=["not-an-address"]
        )


async def test_an_operator_lists_disables_enables_and_rotates_a_client(
    client: httpx.AsyncClient, app: Starlette, app_engine: AsyncEngine
) -> None:
    """What `phigate client list | disable | enable | rotate-secret` do, each an audited
    security event; a disabled client's live token stops working at once."""

    def ctx() -> Any:  # one per command, as the CLI runs them
        return identity_of(app).context(RequestMeta("test"))

    registered = await register(app)
    listed = await accounts.list_clients(ctx())
    assert [(c["client_id"], c["status"]) for c in listed] == [(registered.client_id, "ACTIVE")]
    assert registered.client_secret not in str(listed)

    issued = (await token(client, registered.client_id, registered.client_secret)).json()
    bearer = {"Authorization": f"Bearer {issued['access_token']}"}
    assert (await client.post("/graphql", json=QUERY, headers=bearer)).status_code == 200

    await accounts.disable_client(ctx(), actor="cli:test", client_id=registered.client_id)
    assert (await client.post("/graphql", json=QUERY, headers=bearer)).status_code == 401
    refused = await token(client, registered.client_id, registered.client_secret)
    assert refused.status_code == 401

    await accounts.enable_client(ctx(), actor="cli:test", client_id=registered.client_id)
    # The old token's session stays revoked; a new token works.
    assert (await client.post("/graphql", json=QUERY, headers=bearer)).status_code == 401
    renewed = await token(client, registered.client_id, registered.client_secret)
    assert renewed.status_code == 200

    fresh = await accounts.rotate_client_secret(
        ctx(), actor="cli:test", client_id=registered.client_id, overlap_minutes=60
    )
    # During the overlap both secrets work; without one, only the new one does.
    assert (await token(client, registered.client_id, fresh)).status_code == 200
    assert (await token(client, registered.client_id, registered.client_secret)).status_code == 200
    newest = await accounts.rotate_client_secret(
        ctx(), actor="cli:test", client_id=registered.client_id, overlap_minutes=0
    )
    assert (await token(client, registered.client_id, newest)).status_code == 200
    assert (await token(client, registered.client_id, fresh)).status_code == 401
    with pytest.raises(accounts.InvalidInput):
        await accounts.rotate_client_secret(
            ctx(), actor="cli:test", client_id=registered.client_id, overlap_minutes=-1
        )

    actions = [e["action"] for e in await events(app_engine) if e["actor_id"] == "cli:test"]
    assert actions == [
        "CLIENT_DISABLED",
        "CLIENT_ENABLED",
        "CLIENT_SECRET_ROTATED",
        "CLIENT_SECRET_ROTATED",
    ]
    dump = str(await events(app_engine))
    assert fresh not in dump and newest not in dump


async def test_the_token_endpoint_recovers_when_the_database_ends_its_connections(
    client: httpx.AsyncClient, app: Starlette, admin_engine: AsyncEngine
) -> None:
    """A database restart or failover ends every pooled connection. The rate-limit count
    that opens /oauth/token (straight to the driver) must not hand the dead connection
    back to the pool: after at most one 503, the endpoint answers again."""
    registered = await register(app)
    assert (await token(client, registered.client_id, registered.client_secret)).status_code == 200
    async with admin_engine.connect() as connection:
        ended = await connection.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND usename <> current_user"
            )
        )
    assert ended
    statuses = [
        (await token(client, registered.client_id, registered.client_secret)).status_code
        for _ in range(4)
    ]
    assert statuses[1:] == [200, 200, 200], statuses
    assert statuses[0] in (200, 503), statuses
