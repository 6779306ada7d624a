from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import structlog
from cross_web import HTTPException
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types import ExecutionResult

from db.audit_queries import AnomalyThresholds
from db.crypto import FieldCipher
from db.sessions import VerifiedSession
from db.unit_of_work import RequestDatabase
from domain.authorization import is_written_reason
from domain.permissions import RowScope
from domain.policy import Policy
from domain.roles import Role
from domain.text import (
    MAX_NESTING,
    NESTING_RULE,
    UNSAFE_TEXT_RULE,
    is_unsafe_text,
    nesting_depth,
)
from graph.errors import INTERNAL_ERROR, INTERNAL_MESSAGE, TIMEOUT, masked
from graph.execution.persisted import OperationsMode, PersistedOperations, Refused
from graph.http.authentication import PRINCIPAL, REQUEST_DATABASE, VERIFIED_SESSION
from graph.http.middleware import REQUEST_META
from graph.http.responses import request_error
from graph.logs import describe_exception
from graph.settings import Settings
from resolvers.context import AccessRequest, PageLimits, QueryLimits, RequestContext, RequestMeta

log = structlog.get_logger("phigate.graphql")

# A written reason: long enough to say something, short enough to be a reason.
MIN_REASON = 10
MAX_REASON = 500


def _check_request_text(payload: object) -> None:
    """The document and the operation name are strings the caller sends too: the text
    rule holds for them before anything parses them (values inside the document and
    the variables are checked by graph/enforcement/input_rules.py, naming their field)."""
    if not isinstance(payload, dict):
        return
    for name in ("query", "operationName"):
        value = payload.get(name)
        if isinstance(value, str) and is_unsafe_text(value):
            raise HTTPException(400, f"The field '{name}' {UNSAFE_TEXT_RULE}.")


class GraphQLView(GraphQL[RequestContext, None]):
    def __init__(
        self,
        schema: Any,
        *,
        engine: AsyncEngine,
        audit_read_engine: AsyncEngine | None = None,
        settings: Settings,
        policy: Policy,
        cipher: FieldCipher,
    ) -> None:
        super().__init__(
            schema,
            # Browsers are sent to the analyst console (graph/http/console), which signs
            # in with a cookie; Strawberry's own page would ask for a pasted token.
            graphql_ide=None,
            allow_queries_via_get=True,
            multipart_uploads_enabled=False,
        )
        self._engine = engine
        self._audit_read_engine = audit_read_engine
        self._policy = policy
        self._cipher = cipher
        self._break_glass = timedelta(minutes=settings.break_glass_minutes)
        start, end = (int(hour) for hour in settings.business_hours.split("-"))
        self._anomalies = AnomalyThresholds(
            bulk_patients=settings.anomaly_bulk_patients,
            bulk_minutes=settings.anomaly_bulk_minutes,
            denials=settings.anomaly_denials,
            denial_minutes=settings.anomaly_denial_minutes,
            business_hours=(start, end),
            timezone=settings.timezone,
        )
        self._page_limits = PageLimits(
            default=settings.default_page_size, maximum=settings.max_page_size
        )
        self._query_limits = QueryLimits(
            max_depth=settings.max_depth,
            max_aliases=settings.max_aliases,
            max_tokens=settings.max_tokens,
            max_directives=settings.max_directives,
            max_cost=settings.max_cost,
            max_input_list=settings.max_input_list,
            max_result_items=settings.max_result_items,
            default_page_size=settings.default_page_size,
            max_page_size=settings.max_page_size,
        )
        self.timeout = settings.execution_timeout_seconds
        self.persisted = PersistedOperations(
            engine,
            OperationsMode(settings.operations),
            frozenset(Role(role) for role in settings.adhoc_roles),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Strawberry answers a request it cannot read (not JSON, no query, a method it
        does not serve) in plain text; phigate answers every error as JSON with the
        request id."""
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        try:
            response = await self.run(Request(scope=scope, receive=receive))
        except HTTPException as exc:
            meta = scope.get("state", {}).get(REQUEST_META) or RequestMeta(request_id="unknown")
            response = request_error(exc.status_code, exc.reason, meta.request_id)
        await response(scope, receive, send)

    @property
    def query_limits(self) -> QueryLimits:
        return self._query_limits

    def decode_json(self, data: str | bytes) -> object:
        """The body, or the variables of a GET. A document nested deeper than any input
        needs is refused before a recursive step (graphql-core's coercion) sees it."""
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            if "recursion" in str(exc).lower():
                raise HTTPException(400, f"The request body {NESTING_RULE}.") from None
            # orjson refuses what JSON allows but Unicode does not (an escaped lone
            # surrogate); the standard parser reads it, so the field that holds it can
            # be named by the input rules.
            try:
                payload = json.loads(data)
            except RecursionError:
                raise HTTPException(400, f"The request body {NESTING_RULE}.") from None
        if nesting_depth(payload) > MAX_NESTING:
            raise HTTPException(400, f"The request body {NESTING_RULE}.")
        _check_request_text(payload)
        return payload

    def parse_query_params(self, params: Any) -> dict[str, Any]:
        parsed = super().parse_query_params(params)
        _check_request_text(parsed)
        return parsed

    async def get_context(self, request: Request, response: Response) -> RequestContext:
        state = request.scope.get("state", {})
        meta = state.get(REQUEST_META) or RequestMeta(request_id="unknown")
        reason = (request.headers.get("x-break-glass-reason") or "").strip()
        access = AccessRequest(
            principal=state.get(PRINCIPAL),
            purpose_header=request.headers.get("x-purpose-of-use"),
            break_glass_reason=reason[:MAX_REASON]
            if len(reason) >= MIN_REASON and is_written_reason(reason)
            else None,
            policy=self._policy,
            break_glass_duration=self._break_glass,
        )
        verified: VerifiedSession | None = state.get(VERIFIED_SESSION)
        if verified is not None:
            access = dataclasses.replace(access, database_row_scope=RowScope(verified.row_scope))
        # The connection whose transaction the session check opened (authentication);
        # without one (no session: nothing is visible) a plain one.
        db = state.get(REQUEST_DATABASE) or RequestDatabase(self._engine)
        return RequestContext(
            db=db,
            # The audit trail has no row-level security: the replica needs no context.
            audit_replica=(
                RequestDatabase(self._audit_read_engine)
                if self._audit_read_engine is not None
                else None
            ),
            meta=meta,
            now=datetime.now(UTC),
            access=access,
            page_limits=self._page_limits,
            anomaly_limits=self._anomalies,
            query_limits=self._query_limits,
            cipher=self._cipher,
            break_glass_episodes=dict(verified.episodes) if verified is not None else {},
        )

    def should_render_graphql_ide(self, request: Any) -> bool:
        """Never: browsers are sent to the console before they get here, and a GET that
        accepts anything (`*/*`) is an operation (by persisted-query hash, say), not a
        request for a page."""
        return False

    async def execute_single(
        self, request: Any, request_adapter: Any, *args: Any, **kwargs: Any
    ) -> Any:
        """A mutation sent over GET is a method problem (405), not a malformed request.
        An operation running past the execution timeout is cancelled: its transaction is
        rolled back and nothing it read is returned."""
        call = dict(
            zip(("sub_response", "context", "root_value", "request_data"), args, strict=False)
        )
        call.update(kwargs)
        context = call["context"]
        # The operation name as the caller gave it: plans are learnt under it.
        context.operation_name = call["request_data"].operation_name
        try:
            call["request_data"] = await self.persisted.resolve(
                call["request_data"], context.principal
            )
        except Refused as refused:
            return ExecutionResult(
                data=None,
                errors=[masked(refused.code, refused.message, request_id=context.meta.request_id)],
            )
        try:
            async with asyncio.timeout(self.timeout):
                return await super().execute_single(request, request_adapter, **call)
        except TimeoutError:
            state = request.scope.get("state", {})
            meta = state.get(REQUEST_META) or RequestMeta(request_id="unknown")
            log.warning("operation_timed_out", limit_seconds=self.timeout)
            return ExecutionResult(
                data=None,
                errors=[
                    masked(
                        TIMEOUT,
                        f"The operation took longer than {self.timeout} seconds and was"
                        " stopped; nothing was written.",
                        request_id=meta.request_id,
                    )
                ],
            )
        except HTTPException as exc:
            if request_adapter.method == "GET" and isinstance(
                exc.__cause__, InvalidOperationTypeError
            ):
                raise HTTPException(405, "Mutations are accepted only over POST.") from None
            raise

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        """Last net: an error that escaped the SafeErrors extension (raised by another
        extension after it ran) is replaced by a masked one."""
        response: GraphQLHTTPResponse = {"data": result.data}
        if result.errors:
            request_id = getattr(
                request.scope.get("state", {}).get(REQUEST_META), "request_id", "unknown"
            )
            for error in result.errors:
                if (error.extensions or {}).get("requestId") != request_id:
                    cause = getattr(error, "original_error", None) or error
                    log.error("unmasked_error_replaced", **describe_exception(cause))
            response["errors"] = [
                error.formatted
                if (error.extensions or {}).get("requestId") == request_id
                else {
                    "message": INTERNAL_MESSAGE,
                    "extensions": {"code": INTERNAL_ERROR, "requestId": request_id},
                }
                for error in result.errors
            ]
        if result.extensions:
            response["extensions"] = result.extensions
        return response
