"""JSON error answers for the HTTP (non-GraphQL) endpoints, in OAuth2's shape."""

from __future__ import annotations

from starlette.responses import JSONResponse

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def oauth_error(
    status: int, error: str, description: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={**NO_STORE, **(headers or {})},
    )


def rate_limited(retry_after: int) -> JSONResponse:
    return oauth_error(
        429, "rate_limited", "Too many requests; retry later.", {"Retry-After": str(retry_after)}
    )
