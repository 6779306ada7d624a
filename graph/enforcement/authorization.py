"""Minimum necessary, decided before anything executes: the whole operation (every
field it selects and every argument and input field it provides, as graphql-core will
execute it) against the caller's grant and declared purpose. One refusal refuses the
request; nothing is fetched. Decisions are cached per (document, operation, grant,
purpose, shape of the coerced variables), so enforcement costs nothing per result row.

The executor calls ``decide`` with its own state (graph/execution/executor.py); ``authorize``
builds that state from a document and raw variables, the same way, for the CLI, tests
and benchmarks."""

from __future__ import annotations

import uuid
from collections.abc import Hashable, Iterator
from typing import Any

from cachetools import LRUCache
from graphql import Executor, GraphQLError, GraphQLSchema
from graphql.execution.collect_fields import FragmentDetails
from graphql.execution.values import VariableValues
from graphql.language import DocumentNode, OperationDefinitionNode

from domain.authorization import Decision, Denial, purpose_denial
from domain.authorization import decide as decide_accesses
from domain.principals import Human, Service
from domain.purposes import Purpose
from graph.classification import classify
from graph.enforcement.operation_access import accesses, shape
from resolvers.context import AccessRequest, RequestContext

CACHE_ENTRIES = 4096
MAX_REPORTED_DENIALS = 50


class DecisionCache:
    def __init__(self, entries: int = CACHE_ENTRIES) -> None:
        self._decisions: LRUCache[Hashable, tuple[Purpose | None, Decision]] = LRUCache(entries)
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> tuple[Purpose | None, Decision] | None:
        found = self._decisions.get(key)
        if found is not None:
            self.hits += 1
        return found

    def put(self, key: Hashable, value: tuple[Purpose | None, Decision]) -> None:
        self.misses += 1
        self._decisions[key] = value

    def clear(self) -> None:
        self._decisions.clear()


DECISIONS = DecisionCache()


def _grant_key(access: AccessRequest) -> Hashable:
    principal = access.principal
    if isinstance(principal, Human):
        return ("role", principal.role)
    if isinstance(principal, Service):
        return ("scopes", principal.scopes)
    return None


def decide(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: dict[str, FragmentDetails],
    variable_values: VariableValues,
    access: AccessRequest,
) -> tuple[Purpose | None, Decision]:
    """The decision for exactly what the executor holds: its operation, its fragments
    and its coerced variables."""
    key = (
        operation.loc.source.body if operation.loc else id(operation),
        operation.loc.start if operation.loc else None,
        id(access.policy),
        _grant_key(access),
        access.purpose_header,
        bool(access.break_glass_reason),
        shape(variable_values.coerced),
    )
    cached = DECISIONS.get(key)
    if cached is not None:
        return cached
    grant = access.grant
    purpose, denial = purpose_denial(
        grant, access.who, access.purpose_header, has_reason=bool(access.break_glass_reason)
    )
    if denial is not None:
        result = (purpose, Decision((denial,)))
    else:
        touched = accesses(schema, classify(schema), operation, fragments, variable_values)
        result = (purpose, decide_accesses(grant, access.who, purpose, touched))
    DECISIONS.put(key, result)
    return result


def authorize(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: dict[str, Any] | None,
    access: AccessRequest,
) -> tuple[Purpose | None, Decision]:
    """The decision the gateway would make for a document and raw variables. When the
    executor could not be built (no such operation, variables that do not coerce),
    nothing would execute: the decision touches nothing."""
    built = Executor.build(schema, document, raw_variable_values=variables or {},
                           operation_name=operation_name)  # fmt: skip
    if isinstance(built, list):
        grant = access.grant
        purpose, denial = purpose_denial(
            grant, access.who, access.purpose_header, has_reason=bool(access.break_glass_reason)
        )
        return purpose, Decision((denial,) if denial else ())
    return decide(schema, built.operation, built.fragments, built.variable_values, access)


def denial_error(denial: Denial, request_id: str) -> GraphQLError:
    where = f"{denial.coordinate} (at {denial.path})" if denial.path else denial.coordinate
    return GraphQLError(
        f"Access denied: {where}: {denial.reason}.",
        extensions={
            "code": denial.code,
            "requestId": request_id,
            "field": denial.coordinate,
            "path": denial.path,
        },
    )


def refusal_errors(request: RequestContext, decision: Decision) -> list[GraphQLError]:
    return [
        denial_error(denial, request.meta.request_id)
        for denial in decision.denials[:MAX_REPORTED_DENIALS]
    ]


def denied_entries(
    request: RequestContext, decision: Decision, operation_name: str | None
) -> Iterator[dict[str, Any]]:
    principal = request.principal
    for denial in decision.denials:
        yield {
            "occurred_at": request.now,
            "category": "ACCESS",
            "action": "WRITE" if denial.write else "READ",
            "outcome": "DENIED",
            "actor_id": request.actor_id,
            "actor_kind": "USER"
            if isinstance(principal, Human)
            else ("SERVICE" if principal else None),
            "role": principal.role.value if isinstance(principal, Human) else None,
            "session_id": uuid.UUID(principal.session_id)
            if isinstance(principal, Human) and principal.session_id
            else None,
            "purpose": request.purpose.value
            if request.purpose
            else ("UNKNOWN" if request.access.purpose_header else None),
            "break_glass": bool(request.access.break_glass_reason),
            "operation_name": operation_name[:200] if operation_name else None,
            "field_path": denial.coordinate[:200],
            "reason": denial.code,
            "client_ip": request.meta.client_ip,
            "user_agent": request.meta.user_agent,
            "request_id": request.meta.request_id,
        }
