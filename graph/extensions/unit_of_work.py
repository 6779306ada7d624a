from __future__ import annotations

from collections.abc import AsyncIterator

import structlog
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from db import audit
from graph.errors import INTERNAL_ERROR, INTERNAL_MESSAGE, masked
from graph.logs import describe_exception
from resolvers.context import RequestContext

log = structlog.get_logger("phigate.unit_of_work")


class UnitOfWork(SchemaExtension):
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
                await audit.append(request.db, request.audit)
                await request.db.commit()
            except Exception as exc:
                log.error("commit_failed", **describe_exception(exc))
                await request.db.rollback()
                result.data = None
                result.errors = [
                    masked(INTERNAL_ERROR, INTERNAL_MESSAGE, request_id=request.meta.request_id)
                ]
        finally:
            await request.db.close()


def _is_mutation(context: object) -> bool:
    try:
        return context.operation_type is OperationType.MUTATION  # type: ignore[attr-defined]
    except RuntimeError:
        return False
