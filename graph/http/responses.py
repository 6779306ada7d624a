"""JSON error answers: for the HTTP (non-GraphQL) endpoints in OAuth2's shape, and for
requests refused before they became an operation in the shape of a GraphQL error."""

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


HTTP_CODES = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    408: "REQUEST_TIMEOUT",
    503: "SERVICE_UNAVAILABLE",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


UNAVAILABLE_MESSAGE = "The database is unavailable; nothing was read or written. Retry shortly."
RETRY_AFTER = {"Retry-After": "5"}


def database_unavailable(exc: BaseException) -> bool:
    """Whether an exception means the database could not be used at all (its socket
    gone, the connection dropped or refused), as opposed to a statement failing."""
    import asyncpg
    from sqlalchemy.exc import DBAPIError

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(
            seen,
            ConnectionError
            | FileNotFoundError  # the embedded server's Unix socket, while it restarts
            | asyncpg.CannotConnectNowError
            | asyncpg.ConnectionDoesNotExistError
            | asyncpg.OperatorInterventionError,  # the server shutting down, a terminated backend
        ):
            return True
        if isinstance(seen, DBAPIError) and seen.connection_invalidated:
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__ or seen.__context__
    return False


def unavailable(request_id: str) -> JSONResponse:
    """The database cannot be used (down, restarting, unreachable): answered at once,
    for the client or its load balancer to retry."""
    response = request_error(503, UNAVAILABLE_MESSAGE, request_id)
    response.headers.update(RETRY_AFTER)
    return response


def request_error(
    status: int, message: str, request_id: str, *, code: str | None = None
) -> JSONResponse:
    """A request refused before it became an operation, in the shape of a GraphQL error."""
    return JSONResponse(
        {
            "errors": [
                {
                    "message": message,
                    "extensions": {
                        "code": code or HTTP_CODES.get(status, "BAD_REQUEST"),
                        "requestId": request_id,
                    },
                }
            ]
        },
        status_code=status,
    )
