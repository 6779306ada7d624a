from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import structlog
from asyncpg import PostgresError
from sqlalchemy.exc import DBAPIError
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from db import audit
from domain.security_events import Outcome, SecurityEvent
from graph.errors import (
    AUDIT_MESSAGE,
    AUDIT_UNAVAILABLE,
    ENFORCEMENT_FAILED,
    ENFORCEMENT_MESSAGE,
    INTERNAL_ERROR,
    INTERNAL_MESSAGE,
    SERVICE_UNAVAILABLE,
    limit_of,
    masked,
)
from graph.extensions.limits import limit_error
from graph.http.responses import UNAVAILABLE_MESSAGE, database_unavailable
from graph.logs import describe_exception
from resolvers.audit_trail import entry_base, security_entry
from resolvers.context import RequestContext

log = structlog.get_logger("phigate.unit_of_work")


class UnitOfWork(SchemaExtension):
    record_access = True

    """One transaction per operation: resolvers write, this commits once at the end.

    A mutation that raised anywhere is rolled back whole (nothing half-written). If the
    commit itself fails, the caller gets an error and none of the data the operation
    produced: nothing leaves that was not durably accounted for.
    """

    async def on_operation(self) -> AsyncIterator[None]:
        context = self.execution_context
        request: RequestContext = context.context
        try:
            yield
            result = context.result
            if result is None:
                return
            tripped = bool(request.guard_violations)
            too_large = request.result_too_large
            if too_large:
                # Lists held more than the response may: nothing of it leaves.
                result.errors = [
                    limit_error(
                        "result items",
                        request.query_limits.max_result_items,
                        request.meta.request_id,
                    )
                ]
            try:
                # A mutation with any error keeps nothing. So does an operation whose data
                # an error nulled whole: graphql-core then abandons the sibling fields
                # still running, and one cancelled mid-statement leaves the transaction
                # unusable; nothing of it leaves, so it is rolled back before the audit.
                # A statement that failed in the database leaves the transaction unusable
                # too: rolled back, so the audit is written (and the failure reported as
                # what it was, not as the audit trail's).
                if (
                    tripped
                    or too_large
                    or (result.errors and (_is_mutation(context) or result.data is None))
                    or _database_failed(result.errors)
                ):
                    await request.db.rollback()
                    result.data = None
            except Exception as exc:
                _fail(result, request, INTERNAL_ERROR, INTERNAL_MESSAGE, exc)
                return
            if tripped:
                # Fail closed: nothing the request read leaves, nothing it wrote stays,
                # and the trail says what was stopped (coordinates, never values).
                log.error("enforcement_guard_tripped", fields=request.guard_violations[:20])
                result.errors = [
                    masked(
                        ENFORCEMENT_FAILED, ENFORCEMENT_MESSAGE, request_id=request.meta.request_id
                    )
                ]
            entries = [
                *request.audit,
                *(self._trail_entries(context, request, result) if self.record_access else []),
                *limit_events(request, result.errors),
                *guard_events(request),
            ]
            try:
                # Durable before any PHI leaves: no audit, no answer.
                await audit.append(request.db, entries)
            except Exception as exc:
                _fail(result, request, AUDIT_UNAVAILABLE, AUDIT_MESSAGE, exc)
                await _quietly(request.db.rollback())
                return
            try:
                await request.db.commit()
            except Exception as exc:
                _fail(result, request, INTERNAL_ERROR, INTERNAL_MESSAGE, exc)
                await _quietly(request.db.rollback())
        finally:
            try:
                await request.db.close()
            finally:
                if request.audit_replica is not None:
                    await _quietly(request.audit_replica.close())  # read-only: nothing kept

    @staticmethod
    def _trail_entries(context: Any, request: RequestContext, result: Any) -> list[dict[str, Any]]:
        return request.trail.entries(
            base=entry_base(
                now=request.now,
                principal=request.principal,
                purpose=request.purpose,
                operation_name=context.operation_name,
                query=context.query,
                meta=request.meta,
            ),
            decision=request.decision,
            outcome="ERROR" if result.errors and result.data is None else "ALLOWED",
            episodes=request.break_glass_episodes,
        )


def limit_events(request: RequestContext, errors: Any) -> list[dict[str, Any]]:
    """A refusal by a query limit (depth, aliases, tokens, directives, cost) is a
    security event, like the other refusals: one per request, naming the limit."""
    exceeded = sorted({limit for limit in map(limit_of, errors or ()) if limit})
    if not exceeded:
        return []
    return [
        security_entry(
            request,
            SecurityEvent.QUERY_LIMIT_EXCEEDED,
            Outcome.DENIED,
            reason=",".join(exceeded).upper()[:60],
        )
    ]


def guard_events(request: RequestContext) -> list[dict[str, Any]]:
    """The runtime guard stopped fields the decision did not cover: an ERROR access
    entry for each, and one security event."""
    if not request.guard_violations:
        return []
    stopped = list(dict.fromkeys(request.guard_violations))
    base = entry_base(
        now=request.now,
        principal=request.principal,
        purpose=request.purpose,
        operation_name=None,
        query=None,
        meta=request.meta,
    )
    entries: list[dict[str, Any]] = [
        {
            **base,
            "action": action,
            "outcome": "ERROR",
            "field_path": coordinate[:200],
            "reason": "ENFORCEMENT_GUARD",
        }
        for action, _, coordinate in (violation.partition(" ") for violation in stopped)
    ]
    entries.append(
        security_entry(
            request,
            SecurityEvent.ENFORCEMENT_GUARD_TRIPPED,
            Outcome.ERROR,
            reason="NOT_COVERED_BY_DECISION",
            field_path=stopped[0].partition(" ")[2][:200],
        )
    )
    return entries


class UnauditedUnitOfWork(UnitOfWork):
    """For benchmarks only: what the same work costs without recording PHI access."""

    record_access = False


def _fail(result: Any, request: RequestContext, code: str, message: str, exc: Exception) -> None:
    if database_unavailable(exc):
        # The database went away: that, not the audit trail or a defect, is the answer.
        code, message = SERVICE_UNAVAILABLE, UNAVAILABLE_MESSAGE
    log.error("request_not_committed", error_codes=[code], **describe_exception(exc))
    result.data = None
    result.errors = [masked(code, message, request_id=request.meta.request_id)]


async def _quietly(awaitable: Any) -> None:
    try:
        await awaitable
    except Exception as exc:
        log.warning("rollback_failed", **describe_exception(exc))


def _database_failed(errors: Any) -> bool:
    return any(
        isinstance(getattr(error, "original_error", None), DBAPIError | PostgresError)
        for error in errors or ()
    )


def _is_mutation(context: object) -> bool:
    try:
        return context.operation_type is OperationType.MUTATION  # type: ignore[attr-defined]
    except RuntimeError:
        return False
