from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class GraphQLResponse:
    status: int
    body: dict[str, Any]
    headers: httpx.Headers
    raw: str = field(repr=False)

    @property
    def data(self) -> Any:
        return self.body.get("data")

    @property
    def errors(self) -> list[dict[str, Any]]:
        return self.body.get("errors") or []

    @property
    def codes(self) -> list[str]:
        return [error.get("extensions", {}).get("code") for error in self.errors]

    def ok(self) -> Any:
        assert self.status == 200, self.raw
        assert not self.errors, self.errors
        return self.data


class GraphQLClient:
    def __init__(self, http: httpx.AsyncClient, headers: dict[str, str] | None = None) -> None:
        self.http = http
        self.headers = headers or {}

    async def __call__(
        self,
        query: str | None,
        variables: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> GraphQLResponse:
        payload: dict[str, Any] = {} if query is None else {"query": query}
        if variables is not None:
            payload["variables"] = variables
        if extensions is not None:
            payload["extensions"] = extensions
        response = await self.http.post(
            "/graphql", json=payload, headers={**self.headers, **(headers or {})}
        )
        return GraphQLResponse(
            response.status_code, response.json(), response.headers, response.text
        )
