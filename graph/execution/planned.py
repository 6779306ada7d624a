"""POST /graphql: a request whose operation has a plan runs it; anything else, and any
request the plan cannot answer exactly as the full path would, goes to Strawberry.

The plan runs the same checks as the full path, from the same code, in the same order:
persisted operations, variables coerced by graphql-core, query limits, the decision
(cached, refused operations go to the full path to be refused and audited there), the
runtime guard (every PHI field the plan writes must be in the decision), row scope, the
audit trail's entries (durable, with the read, in one commit) and the execution timeout.
What it leaves out is graphql-core's field-by-field resolution, Strawberry's objects and
SQLAlchemy's statement handling: the rows are read with only the columns selected and
written straight into the response.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import orjson
import structlog
from graphql import GraphQLSchema
from graphql.execution.values import get_argument_values, get_variable_values
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send
from strawberry.http import GraphQLRequestData

from db import audit
from db.audit import session_check
from db.crypto import DecryptionError
from db.patients import (
    Compiled,
    planned_one,
    planned_one_audited,
    planned_page,
    planned_page_audited,
)
from domain.errors import DomainError
from domain.patients import withheld_from_payer
from graph.enforcement.authorization import decide
from graph.enforcement.input_rules import variable_violations
from graph.enforcement.operation_access import shape
from graph.errors import (
    AUDIT_MESSAGE,
    AUDIT_UNAVAILABLE,
    INTERNAL_ERROR,
    INTERNAL_MESSAGE,
    TIMEOUT,
)
from graph.execution.persisted import Refused
from graph.execution.planner import Plan, Plans, Root
from graph.extensions.limits import exceeded_limit
from graph.http.authentication import (
    DEFERRED,
    PRINCIPAL,
    REQUEST_DATABASE,
    VERIFIED_SESSION,
    Deferred,
)
from graph.http.responses import database_unavailable, unavailable
from graph.logs import describe_exception
from resolvers.audit_trail import entry_base
from resolvers.context import RequestContext
from resolvers.inputs import decode_cursor, encode_cursor, page_size, parse_id

log = structlog.get_logger("phigate.planned")
# The session check alone, for a plan with nothing to read.
SESSION_CHECK = Compiled(*session_check())
REQUEST_KEYS = frozenset({"query", "variables", "operationName"})


class Fallback(Exception):
    """The plan cannot answer this request exactly: the full path will."""


class Unchecked(Fallback):
    """The statement's own session check did not find the caller expected (the session
    ended, or the person's role, row scope or break-glass episodes changed): it read
    nothing; the usual check runs and the request goes on from there."""


class Unaudited(Exception):
    """The statement that reads and writes its own audit entries failed: nothing it read
    may leave, and which half failed is not known, so the full path answers (and
    records) the request. The database's error is the cause."""


class PlannedEndpoint:
    def __init__(self, view: Any, schema: GraphQLSchema, plans: Plans, *, enabled: bool) -> None:
        self.view = view
        self.schema = schema
        self.plans = plans
        self.enabled = enabled
        # Why requests went to the full path, by reason: what a plan does not cover yet.
        self.fallbacks: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.get("state", {})
        deferred: Deferred | None = state.get(DEFERRED)
        if deferred is not None:
            # The session is checked by the read's own statement, if the request is one
            # plan's single audited read; if not, or if that check does not find the
            # caller expected, by the usual check, before anything else happens.
            if self.enabled and scope["method"] == "POST":
                body, receive = await _buffered(receive)
                try:
                    checked = await self.answer(scope, body, deferred)
                except Exception as exc:
                    # Nothing the database has not checked may answer: the usual path does.
                    log.warning("checked_read_failed", **describe_exception(exc))
                    checked = "error"
                if isinstance(checked, Response):
                    await checked(scope, receive, send)
                    return
                self.fallbacks["checked: " + (checked or "unknown")] += 1
            # The statement's connection goes back before the usual check takes one: a
            # request must never hold one connection while waiting for another.
            await deferred.db.close()
            refusal = await deferred.open(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        if not self.enabled or scope["method"] != "POST" or REQUEST_DATABASE not in state:
            await self.view(scope, receive, send)
            return
        body, receive = await _buffered(receive)
        response = await self.answer(scope, body)
        if response is None or isinstance(response, str):
            self.fallbacks[response or "unknown"] += 1
            await self.view(scope, receive, send)
        else:
            await response(scope, receive, send)

    async def answer(
        self, scope: Scope, body: bytes, deferred: Deferred | None = None
    ) -> Response | str:
        """The planned response, or why the full path answers instead. ``deferred``: the
        session is not checked yet, and the plan must check it in its statement."""
        request = _request(body)
        if request is None:
            return "request"
        query, variables, operation_name = request
        family = self.plans.family(query, operation_name)
        if family is None:
            return "not learnt"
        if deferred is not None:
            # The caller as the statement will require the database to find it.
            scope = {
                **scope,
                "state": {
                    **scope["state"],
                    PRINCIPAL: deferred.principal,
                    VERIFIED_SESSION: deferred.expected,
                    REQUEST_DATABASE: deferred.db,
                },
            }
        principal = scope["state"].get(PRINCIPAL)
        try:
            await self.view.persisted.resolve(
                GraphQLRequestData(
                    query=query,
                    variables=variables,
                    operation_name=operation_name,
                    extensions=None,
                ),
                principal,
            )
        except Refused:
            return "persisted"
        coerced = get_variable_values(
            self.schema, family.operation.variable_definitions or (), variables
        )
        if (
            isinstance(coerced, list)
            or variable_violations(coerced.coerced, self.view.query_limits.max_input_list)
            is not None
        ):
            return "variables"  # the full path reports variables that do not coerce
        plan = family.plans.get(shape(coerced.coerced))
        if plan is None:
            return "no plan"
        if deferred is not None and sum(root.kind != "typename" for root in plan.roots) > 1:
            return "not one read"  # only a single statement can check the session
        if deferred is not None and plan.sealed:
            # Its statement would commit the audit entries before a value is opened; one
            # that does not open sends the request to the full path, which records it
            # again. In the request's own transaction, they are rolled back instead.
            return "opens sealed values"
        context: RequestContext = await self.view.get_context(Request(scope), None)  # type: ignore[arg-type]
        if exceeded_limit(
            self.schema,
            family.operation,
            {name: detail.definition for name, detail in family.fragments.items()},
            coerced.coerced,
            context.query_limits,
        ):
            return "limit"
        purpose, decision = decide(
            self.schema, family.operation, family.fragments, coerced, context.access
        )
        if not decision.allowed:
            return "refused"  # refused and audited by the full path
        # The runtime guard, for planned execution: every PHI field the plan will write
        # must be one the decision allowed; if not, the full path's guard fails it closed.
        if not plan.phi_nodes <= decision.phi_nodes:
            return "guard"
        if plan.diagnoses and withheld_from_payer(True, purpose):
            return "payer restriction"  # the full path leaves them out and records it
        context.admit(purpose, decision)
        # As the full path records them: the operation's own name, the document's hash.
        context.operation_name = family.operation.name.value if family.operation.name else None
        context.query = query
        context.document_hash = family.document_hash
        try:
            async with asyncio.timeout(self.view.timeout):
                data = await self._run(plan, context, coerced, deferred)
                return await self._commit(context, data)
        except (Fallback, DomainError, DecryptionError) as exc:
            await context.db.rollback()
            return type(exc).__name__
        except Unaudited as exc:
            # Which half failed is not known: the full path runs the request again (the
            # failed statement committed nothing) and reports, and records, the failure
            # as what it was (AUDIT_UNAVAILABLE if the audit store refuses its entries).
            log.warning("planned_read_failed", **describe_exception(exc.__cause__ or exc))
            await _quietly(context.db.rollback())
            return "Unaudited"
        except TimeoutError:
            if deferred is not None:
                # Whether the session was live is not known: the usual check answers.
                return "timeout"
            await _quietly(context.db.rollback())
            log.warning("operation_timed_out", limit_seconds=self.view.timeout)
            return _error(
                TIMEOUT,
                f"The operation took longer than {self.view.timeout} seconds and was"
                " stopped; nothing was written.",
                context,
            )
        except Exception as exc:
            if deferred is not None:
                raise  # the caller's handler: the usual check, then this path again
            # A defect of the plan, before anything was committed (nothing after the
            # commit can fail): nothing stays, nothing left, and the full path answers.
            log.error("planned_execution_failed", **describe_exception(exc))
            await _quietly(context.db.rollback())
            return "error"

    async def _run(
        self, plan: Plan, context: RequestContext, coerced: Any, deferred: Deferred | None
    ) -> dict[str, Any]:
        data: dict[str, Any] = {}
        # One root reading patients, and no break-glass episode to name: its audit entries
        # are written by the read itself (one statement); otherwise after, from the trail.
        reading = [root for root in plan.roots if root.kind != "typename"]
        inline = len(reading) == 1 and not context.break_glass_episodes
        if deferred is not None and not inline:
            if reading or context.break_glass_episodes:
                raise Unchecked  # only a single audited read's statement checks the session
            # Nothing to read ({ __typename }): the check alone, in one round trip.
            await self._checked(context, SESSION_CHECK, {}, deferred)
        for root in plan.roots:
            if root.kind == "typename":
                data[root.key] = "Query"
            elif root.kind == "patients":
                data[root.key] = await self._patients(root, context, coerced, inline, deferred)
            else:
                data[root.key] = await self._patient(root, context, coerced, inline, deferred)
        self.plans.executed += 1
        return data

    async def _read(
        self,
        context: RequestContext,
        compiled: Compiled,
        values: dict[str, Any],
        deferred: Deferred | None,
        *,
        audited: bool,
    ) -> list[Any]:
        """The rows; with ``deferred``, read by a statement that checks the session first
        and reads nothing unless it finds the caller expected. ``audited``: the statement
        writes the read's audit entries too."""
        if deferred is None:
            try:
                return await context.db.fetch(compiled.sql, *compiled.arguments(values))
            except Exception as exc:
                if audited:
                    raise Unaudited from exc
                raise
        rows = await self._checked(context, compiled, values, deferred)
        return [row for row in rows if row["id"] is not None]

    async def _checked(
        self,
        context: RequestContext,
        compiled: Compiled,
        values: dict[str, Any],
        deferred: Deferred,
    ) -> list[Any]:
        """The rows of a statement that checks the session first (its own transaction),
        the check's own row included: ``Unchecked`` unless the database found the caller
        expected."""
        values.update(deferred.presented.opening.checked_by_statement(deferred.expected))
        try:
            rows = await context.db.fetch_alone(compiled.sql, *compiled.arguments(values))
        except Exception as exc:
            # Nothing was read that leaves (a statement that fails commits nothing): the
            # usual check answers, as it answers any request when the database is away.
            log.warning("checked_read_failed", **describe_exception(exc))
            raise Unchecked from None
        if not rows or rows[0]["session_checked"] != 1:
            raise Unchecked
        self.plans.checked += 1
        return rows

    async def _patients(
        self,
        root: Root,
        context: RequestContext,
        coerced: Any,
        inline: bool,
        deferred: Deferred | None,
    ) -> Any:
        arguments = get_argument_values(root.field, root.details.node, coerced)
        limit = page_size(arguments.get("first"), context.page_limits)
        after = arguments.get("after")
        position = decode_cursor(after) if after is not None else None
        scope = context.scope
        assert root.patient is not None
        if inline:
            compiled = planned_page_audited(
                root.patient.columns, scope.row_scope, position is not None, deferred is not None
            )
        else:
            compiled = planned_page(root.patient.columns, scope.row_scope, position is not None)
        values: dict[str, Any] = {"actor": scope.actor_uuid, "limit": limit + 1}
        if position is not None:
            values["after_created_at"], values["after_id"] = position
        if inline:
            values.update(_inline_audit(root, context))
        rows = await self._read(context, compiled, values, deferred, audited=inline)
        page, has_next = rows[:limit], len(rows) > limit
        if not inline:
            context.trail.returned(root.key, [row["id"] for row in page])
        connection: dict[str, Any] = {}
        for key, part, detail in root.connection:
            if part == "typename":
                connection[key] = detail
            elif part == "pageInfo":
                connection[key] = _page_info(detail, page, has_next)
            else:
                connection[key] = [_edge(detail, row, context) for row in page]
        return connection

    async def _patient(
        self,
        root: Root,
        context: RequestContext,
        coerced: Any,
        inline: bool,
        deferred: Deferred | None,
    ) -> Any:
        arguments = get_argument_values(root.field, root.details.node, coerced)
        patient_id = parse_id(arguments["id"], "id")
        scope = context.scope
        assert root.patient is not None
        if inline:
            compiled = planned_one_audited(
                root.patient.columns, scope.row_scope, deferred is not None
            )
        else:
            compiled = planned_one(root.patient.columns, scope.row_scope)
        values = {"actor": scope.actor_uuid, "patient_id": patient_id}
        if inline:
            values.update(_inline_audit(root, context))
        rows = await self._read(context, compiled, values, deferred, audited=inline)
        if not rows:
            raise Fallback  # not found, or break-glass: the full path answers
        if not inline:
            context.trail.returned(root.key, [rows[0]["id"]])
        return root.patient.write(rows[0], context)

    async def _commit(self, context: RequestContext, data: dict[str, Any]) -> Response:
        """As the unit of work: the audit entries durable before anything leaves (those a
        read wrote itself are in the same transaction). A request whose trail is empty
        (``{ __typename }``, a read that wrote its own entries) has none to build. The
        response is encoded first: nothing that can fail comes after the commit."""
        body = orjson.dumps({"data": data})
        if not context.trail.empty:
            entries = context.trail.entries(
                base=_entry_base(context),
                decision=context.decision,
                outcome="ALLOWED",
                episodes=context.break_glass_episodes,
            )
            try:
                await audit.append(context.db, entries)
            except Exception as exc:
                return await _not_committed(context, exc, AUDIT_UNAVAILABLE, AUDIT_MESSAGE)
        try:
            await context.db.commit()
        except Exception as exc:
            return await _not_committed(context, exc, INTERNAL_ERROR, INTERNAL_MESSAGE)
        return Response(body, media_type="application/json")


async def _not_committed(
    context: RequestContext, exc: Exception, code: str, message: str
) -> Response:
    """Nothing of the request stays, and nothing it read leaves; a database that went
    away is said to be unavailable, not blamed on the audit trail or a defect."""
    log.error("request_not_committed", error_codes=[code], **describe_exception(exc))
    await _quietly(context.db.rollback())
    if database_unavailable(exc):
        return unavailable(context.meta.request_id)
    return _error(code, message, context)


def _entry_base(context: RequestContext) -> dict[str, Any]:
    return entry_base(
        now=context.now,
        principal=context.principal,
        purpose=context.purpose,
        operation_name=context.operation_name,
        query=context.query,
        meta=context.meta,
        digest=context.document_hash,
    )


def _inline_audit(root: Root, context: RequestContext) -> dict[str, Any]:
    """The parameters of the entries a read writes itself: what every entry of the
    request shares (as entry_base), and each PHI field the decision allows beneath the
    root with its data class, once each (as AuditTrail.entries)."""
    assert context.decision is not None
    fields: dict[str, str] = {}
    prefix = root.key + "."
    for access in context.decision.phi:
        if not access.write and access.path.startswith(prefix):
            fields.setdefault(access.coordinate, access.data_class or "")
    base = _entry_base(context)
    return {
        **{name: base[name] for name in INLINE_SHARED},
        "audit_fields": list(fields),
        "audit_classes": list(fields.values()),
    }


INLINE_SHARED = (
    "occurred_at", "actor_id", "actor_kind", "role", "session_id", "purpose", "break_glass",
    "operation_name", "document_hash", "client_ip", "user_agent", "request_id",
)  # fmt: skip


def _edge(parts: Any, row: Any, context: RequestContext) -> dict[str, Any]:
    edge: dict[str, Any] = {}
    for key, part, node in parts:
        if part == "node":
            edge[key] = node.write(row, context)
        elif part == "cursor":
            edge[key] = encode_cursor(row["created_at"], row["id"])
        else:
            edge[key] = "PatientEdge"
    return edge


def _page_info(parts: Any, page: list[Any], has_next: bool) -> dict[str, Any]:
    info: dict[str, Any] = {}
    for key, name in parts:
        if name == "hasNextPage":
            info[key] = has_next
        elif name == "endCursor":
            info[key] = encode_cursor(page[-1]["created_at"], page[-1]["id"]) if page else None
        else:
            info[key] = "PageInfo"
    return info


def _request(body: bytes) -> tuple[str, dict[str, Any], str | None] | None:
    """A plain single operation: its text, variables and operation name."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(payload, dict) or not set(payload) <= REQUEST_KEYS:
        return None
    query, variables = payload.get("query"), payload.get("variables") or {}
    operation_name = payload.get("operationName")
    if not isinstance(query, str) or not isinstance(variables, dict):
        return None
    if operation_name is not None and not isinstance(operation_name, str):
        return None
    return query, variables, operation_name


def _error(code: str, message: str, context: RequestContext) -> Response:
    body = {
        "data": None,
        "errors": [
            {"message": message, "extensions": {"code": code, "requestId": context.meta.request_id}}
        ],
    }
    return Response(orjson.dumps(body), media_type="application/json")


async def _buffered(receive: Receive) -> tuple[bytes, Receive]:
    """The whole body, and a receive that replays it for the full path."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


async def _quietly(awaitable: Any) -> None:
    try:
        await awaitable
    except Exception as exc:
        log.warning("rollback_failed", **describe_exception(exc))
