"""graphql-core's executor, deciding before it runs from exactly what it will run.

By the time ``execute_operation`` is called, graphql-core has chosen the operation,
gathered the fragments and coerced the variables (defaults applied, single values
coerced to lists, nested input objects). The query limits that need variables and the
minimum-necessary decision are computed from that state, not from a second reading of
the request; a refusal returns before any field resolves. The decision also arms the
runtime guard (graph/enforcement/guard.py) for the fields and inputs it allowed."""

from __future__ import annotations

from typing import Any

import structlog
from graphql import ExecutionResult, GraphQLError
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from graph.enforcement.authorization import decide, denied_entries, refusal_errors
from graph.enforcement.input_rules import variable_violations
from graph.execution.planner import PLANS
from graph.extensions.limits import exceeded_limit, limit_error
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
        unsafe = variable_violations(
            self.variable_values.coerced, request.query_limits.max_input_list
        )
        if unsafe is not None:
            return ExecutionResult(None, [GraphQLError(unsafe.message, original_error=unsafe)])
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
            # this shape of variables) may run a plan instead (graph/execution/planned.py).
            PLANS.learn(
                self.schema,
                request.operation_name,
                self.operation,
                self.fragments,
                self.variable_values,
            )
        return super().execute_operation(serially)

    def complete_iterable_value(
        self,
        item_type: Any,
        field_details_list: Any,
        info: Any,
        path: Any,
        items: Any,
        position_context: Any,
    ) -> Any:
        """Counts every list's items against the response's budget: the cost model
        estimates lists it cannot size (no `first`), this counts what they hold."""
        if not isinstance(items, list | tuple):
            items = list(items)
        request: RequestContext = self.context_value
        request.result_items += len(items)
        if request.result_items > request.query_limits.max_result_items:
            request.result_too_large = True
            raise ResultTooLarge(request.query_limits.max_result_items)
        return super().complete_iterable_value(
            item_type, field_details_list, info, path, items, position_context
        )


class ResultTooLarge(Exception):
    """Raised where the budget is passed; the unit of work then answers LIMIT_EXCEEDED
    with no data (graph/extensions/unit_of_work.py)."""

    def __init__(self, maximum: int) -> None:
        super().__init__(f"more than {maximum} list items")


class UnenforcedExecutor(GatewayExecutor):
    """For benchmarks only: what the same work costs without the decision."""

    enforce = False
