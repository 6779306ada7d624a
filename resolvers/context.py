from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from db.audit_queries import AnomalyThresholds
from db.crypto import FieldCipher
from db.unit_of_work import RequestDatabase
from db.visibility import PatientScope
from domain.authorization import Decision
from domain.permissions import RowScope
from domain.policy import Grant, Policy, bundled_policy
from domain.principals import Human, Principal
from domain.purposes import Purpose
from resolvers.audit_trail import AuditTrail
from resolvers.loaders import Loaders


class GuardTripped(Exception):
    """A PHI field was about to be resolved, or a PHI input applied, that the request's
    decision did not cover. Names the schema coordinate, never a value."""

    def __init__(self, coordinate: str) -> None:
        super().__init__(f"enforcement guard: {coordinate} is not covered by the decision")
        self.coordinate = coordinate


@dataclass(frozen=True, slots=True)
class PageLimits:
    default: int = 20
    maximum: int = 100


@dataclass(frozen=True, slots=True)
class RequestMeta:
    """Where a request came from: the audit trail's "where" (never PHI)."""

    request_id: str
    client_ip: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True, slots=True)
class AccessRequest:
    """Who asks, for what declared purpose (X-Purpose-Of-Use), and, for emergency
    access, why (X-Break-Glass-Reason)."""

    principal: Principal | None = None
    purpose_header: str | None = None
    break_glass_reason: str | None = None
    policy: Policy = field(default_factory=bundled_policy)
    break_glass_duration: timedelta = timedelta(minutes=60)
    # The row scope the database granted when it checked the session (its ceiling for
    # the role or scopes): the narrower of it and the policy's is what resolvers use.
    database_row_scope: RowScope | None = None

    @property
    def grant(self) -> Grant:
        return self.policy.grant(self.principal)

    @property
    def who(self) -> str:
        if isinstance(self.principal, Human):
            return f"role {self.principal.role.value}"
        if self.principal is not None:
            return "this service"
        return "an anonymous caller"

    @property
    def actor_id(self) -> str | None:
        return self.principal.actor_id if self.principal is not None else None

    @property
    def scope(self) -> PatientScope:
        row_scope = self.grant.row_scope
        if self.database_row_scope is not None:
            row_scope = narrower(row_scope, self.database_row_scope)
        return PatientScope(row_scope, self.actor_id)


_WIDTH = {RowScope.NONE: 0, RowScope.CARE_TEAM: 1, RowScope.ALL: 2}


def narrower(a: RowScope, b: RowScope) -> RowScope:
    return a if _WIDTH[a] <= _WIDTH[b] else b


@dataclass(frozen=True, slots=True)
class QueryLimits:
    """What one GraphQL document may ask for (see graph/extensions/limits.py)."""

    max_depth: int = 10
    max_aliases: int = 15
    max_tokens: int = 2000
    max_directives: int = 50
    max_cost: int = 5000
    # Items in any one list of the input (literal or variable).
    max_input_list: int = 100
    # List items a response may hold in all (lists without a page size included).
    max_result_items: int = 20_000
    default_page_size: int = 20
    max_page_size: int = 100


@dataclass
class RequestContext:
    db: RequestDatabase
    meta: RequestMeta
    now: datetime
    access: AccessRequest = field(default_factory=AccessRequest)
    page_limits: PageLimits = field(default_factory=PageLimits)
    anomaly_limits: AnomalyThresholds = field(default_factory=AnomalyThresholds)
    query_limits: QueryLimits = field(default_factory=QueryLimits)
    # The operation name the caller sent (None for a document's only operation), and (a
    # planned read) the document, for the audit entries it writes itself.
    operation_name: str | None = None
    query: str | None = None
    # The document's SHA-256 when already known (a planned request's), else hashed from
    # ``query`` for the entries.
    document_hash: str | None = None
    # Set by the executor before any field resolves (graph/execution/executor.py).
    purpose: Purpose | None = None
    decision: Decision | None = None
    # What the runtime guard lets through (graph/enforcement/guard.py), from the decision; and the
    # coordinates it stopped, if any (a defect: the request fails closed).
    phi_nodes: frozenset[int] = frozenset()
    phi_inputs: frozenset[str] = frozenset()
    guard_violations: list[str] = field(default_factory=list)
    # List items completed so far, against QueryLimits.max_result_items; past it, the
    # request fails closed (no data) with LIMIT_EXCEEDED.
    result_items: int = 0
    result_too_large: bool = False
    # Open break-glass episodes of the caller by patient, for patients outside their care
    # team: a read of one of them is recorded as a read through its episode.
    break_glass_episodes: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    # Audit entries collected during the request, written with its transaction.
    audit: list[dict[str, Any]] = field(default_factory=list)
    trail: AuditTrail = field(default_factory=AuditTrail)
    # Opens and seals encrypted columns; None only where no PHI identifiers are touched.
    cipher: FieldCipher | None = None
    # A read replica's connection for the audit review queries, when one is configured.
    audit_replica: RequestDatabase | None = None

    @functools.cached_property
    def loaders(self) -> Loaders:
        """Built on first use: a planned read needs none."""
        return Loaders(self.db, self.access.scope, self.audit_reads, fields=self.read_fields)

    @property
    def read_fields(self) -> frozenset[str] | None:
        """The PHI fields (schema coordinates) this operation may read: the reads behind
        its answer select only their columns. None before a decision (read everything
        a rule needs)."""
        return self.decision.phi_fields if self.decision is not None else None

    def admit(self, purpose: Purpose | None, decision: Decision) -> None:
        self.purpose, self.decision = purpose, decision
        self.phi_nodes, self.phi_inputs = decision.phi_nodes, decision.phi_inputs

    def guard_tripped(self, coordinate: str, *, write: bool) -> GuardTripped:
        """Record that the runtime guard stopped a field the decision did not cover."""
        self.guard_violations.append(f"{'WRITE' if write else 'READ'} {coordinate}")
        return GuardTripped(coordinate)

    @property
    def audit_reads(self) -> RequestDatabase:
        """Where the audit review queries read: the replica when there is one. What the
        review itself adds to the trail is written with the request, on the primary."""
        return self.audit_replica or self.db

    def require_cipher(self) -> FieldCipher:
        if self.cipher is None:
            raise RuntimeError("no field cipher is configured for this request")
        return self.cipher

    @property
    def principal(self) -> Principal | None:
        return self.access.principal

    @property
    def scope(self) -> PatientScope:
        return self.access.scope

    @property
    def actor_id(self) -> str | None:
        return self.access.actor_id

    @property
    def today(self) -> date:
        return self.now.date()
