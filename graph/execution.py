"""graphql-core's executor, deciding before it runs from exactly what it will run.

By the time ``execute_operation`` is called, graphql-core has chosen the operation,
gathered the fragments and coerced the variables (defaults applied, single values
coerced to lists, nested input objects). The query limits that need variables and the
minimum-necessary decision are computed from that state, not from a second reading of
the request; a refusal returns before any field resolves. The decision also arms the
runtime guard (graph/guard.py) for the fields and inputs it allowed."""

from __future__ import annotations

from typing import Any

import structlog
from graphql import ExecutionResult
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from graph.authorization import decide, denied_entries, refusal_errors
from graph.extensions.limits import exceeded_limit, limit_error
from graph.planner import PLANS
from resolvers.context import RequestContext

log = structlog.get_logger("phigate.execution")


class GatewayExecutor(StrawberryGraphQLCoreExecutionContext):
    """Limits, then the decision, then graphql-core's own execution (through
    Strawberry's executor class, which graphql-core's ``Executor`` underlies)."""

    enforce = True

    def execute_operation(self, serially: bool | None = None) -> Any:
        request = self.context_value
        if not isinstance(request, RequestContext):
            raise TypeError("phigate executes operations only with its request context")
        exceeded = exceeded_limit(
            self.schema,
            self.operation,
            self.fragment_definitions,
            self.variable_values.coerced,
            request.query_limits,
        )
        if exceeded is not None:
            return ExecutionResult(None, [limit_error(*exceeded, request.meta.request_id)])
        if self.enforce:
            purpose, decision = decide(
                self.schema, self.operation, self.fragments, self.variable_values, request.access
            )
            request.admit(purpose, decision)
            if not decision.allowed:
                name = self.operation.name.value if self.operation.name else None
                request.audit.extend(denied_entries(request, decision, name))
                return ExecutionResult(None, refusal_errors(request, decision))
            # Parsed, validated and decided: the next request for this operation (and
            # this shape of variables) may run a plan instead (graph/planned.py).
            PLANS.learn(
                self.schema,
                request.operation_name,
                self.operation,
                self.fragments,
                self.variable_values,
            )
        return super().execute_operation(serially)


class UnenforcedExecutor(GatewayExecutor):
    """For benchmarks only: what the same work costs without the decision."""

    enforce = False
