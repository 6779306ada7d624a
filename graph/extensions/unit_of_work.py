from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import structlog
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from db import audit
from graph.errors import AUDIT_MESSAGE, AUDIT_UNAVAILABLE, INTERNAL_ERROR, INTERNAL_MESSAGE, masked
from graph.logs import describe_exception
from resolvers.audit_trail import entry_base
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
            try:
                if result.errors and _is_mutation(context):
                    await request.db.rollback()
                    result.data = None
            except Exception as exc:
                _fail(result, request, INTERNAL_ERROR, INTERNAL_MESSAGE, exc)
                return
            entries = request.audit + (
                self._trail_entries(context, request, result) if self.record_access else []
            )
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
        )


class UnauditedUnitOfWork(UnitOfWork):
    """For benchmarks only: what the same work costs without recording PHI access."""

    record_access = False


def _fail(result: Any, request: RequestContext, code: str, message: str, exc: Exception) -> None:
    log.error("request_not_committed", error_codes=[code], **describe_exception(exc))
    result.data = None
    result.errors = [masked(code, message, request_id=request.meta.request_id)]


async def _quietly(awaitable: Any) -> None:
    try:
        await awaitable
    except Exception as exc:
        log.warning("rollback_failed", **describe_exception(exc))


def _is_mutation(context: object) -> bool:
    try:
        return context.operation_type is OperationType.MUTATION  # type: ignore[attr-defined]
    except RuntimeError:
        return False
