"""Minimum necessary, enforced before anything executes: the whole operation (every
selected field, through fragments and aliases, and every provided input field) is
decided against the caller's grant and declared purpose. One refusal refuses the
request; nothing is fetched. Decisions are cached per (document, operation, grant,
purpose, shape of the inputs), so enforcement costs nothing per result row."""

from __future__ import annotations

import uuid
from collections.abc import Hashable, Iterator
from typing import Any

from cachetools import LRUCache
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError
from graphql.language import DocumentNode
from strawberry.extensions import SchemaExtension

from domain.authorization import Decision, Denial, decide, purpose_denial
from domain.principals import Human, Service
from domain.purposes import Purpose
from graph.classification import classify
from graph.operation_access import accesses, operation_of, shape
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


DECISIONS = DecisionCache()


def _grant_key(access: AccessRequest) -> Hashable:
    principal = access.principal
    if isinstance(principal, Human):
        return ("role", principal.role)
    if isinstance(principal, Service):
        return ("scopes", principal.scopes)
    return None


def authorize(
    schema: Any,
    document: DocumentNode,
    operation_name: str | None,
    variables: dict[str, Any] | None,
    access: AccessRequest,
) -> tuple[Purpose | None, Decision]:
    body = document.loc.source.body if document.loc else id(document)
    key = (
        body,
        operation_name,
        id(access.policy),
        _grant_key(access),
        access.purpose_header,
        bool(access.break_glass_reason),
        shape(variables or {}),
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
        operation = operation_of(document, operation_name)
        touched = (
            accesses(schema, classify(schema), document, operation, variables or {})
            if operation
            else []
        )
        result = (purpose, decide(grant, access.who, purpose, touched))
    DECISIONS.put(key, result)
    return result


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


class Authorization(SchemaExtension):
    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        request: RequestContext = context.context
        if context.graphql_document is not None and context.result is None:
            purpose, decision = authorize(
                context.schema._schema,
                context.graphql_document,
                context.operation_name,
                context.variables,
                request.access,
            )
            request.purpose, request.decision = purpose, decision
            if not decision.allowed:
                # Setting the result here means Strawberry does not execute at all.
                context.result = GraphQLExecutionResult(
                    data=None,
                    errors=[
                        denial_error(d, request.meta.request_id)
                        for d in decision.denials[:MAX_REPORTED_DENIALS]
                    ],
                )
                request.audit.extend(denied_entries(request, decision, context.operation_name))
        yield


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
