from __future__ import annotations

from collections.abc import AsyncIterator
from functools import cache

import structlog
from graphql import GraphQLSchema
from strawberry.extensions import SchemaExtension

from graph.errors import safe_error, schema_names

log = structlog.get_logger("phigate.graphql")


@cache
def _names(schema: GraphQLSchema) -> frozenset[str]:
    return schema_names(schema)


class SafeErrors(SchemaExtension):
    """Outermost extension: every error leaves with a code, the request id and a message
    that cannot carry a submitted value. Runs after the unit of work has decided."""

    async def on_operation(self) -> AsyncIterator[None]:
        yield
        context = self.execution_context
        result = context.result
        if result is None or not result.errors:
            return
        request_id = getattr(getattr(context.context, "meta", None), "request_id", "unknown")
        allowed = _names(context.schema._schema)
        result.errors = [
            safe_error(
                error,
                request_id=request_id,
                allowed_names=allowed,
                document=context.graphql_document,
            )
            for error in result.errors
        ]
        codes = sorted({str((error.extensions or {}).get("code")) for error in result.errors})
        log.info("graphql_errors", error_codes=codes, operation_name=context.operation_name)
