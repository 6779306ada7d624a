"""The raw baseline: the same rows by a hand-written asyncpg query and json.dumps in a
bare Starlette route. No authentication, policy, audit or GraphQL: what the data costs."""

from __future__ import annotations

import json
import os
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

QUERY = (
    "SELECT id::text AS id, given_name, family_name FROM phigate.patients"
    " ORDER BY created_at, id LIMIT $1"
)


@asynccontextmanager
async def lifespan(app: Starlette) -> Any:
    app.state.pool = await asyncpg.create_pool(
        user=os.environ["RAW_USER"],
        database=os.environ["RAW_DATABASE"],
        host=os.environ["RAW_HOST"],
        port=int(os.environ["RAW_PORT"]),
        min_size=2,
        max_size=10,
    )
    yield
    await app.state.pool.close()


async def patients(request: Request) -> Response:
    limit = int(request.query_params.get("first", "1"))
    async with request.app.state.pool.acquire() as connection:
        rows = await connection.fetch(QUERY, limit)
    body = json.dumps(
        {
            "data": {
                "patients": [
                    {"id": r["id"], "givenName": r["given_name"], "familyName": r["family_name"]}
                    for r in rows
                ]
            }
        }
    )
    return Response(body, media_type="application/json")


app = Starlette(routes=[Route("/patients", patients)], lifespan=lifespan)
