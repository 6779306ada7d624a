"""The policy applied to an operation, before anyone runs it: for every role and service
scope, and every purpose (or none), whether the gateway would allow the operation, why
not, and which PHI it would read or write. The verdict is the gateway's own decision
(``authorize``: the executor's field collection and argument coercion over the same
classification), not a re-implementation.

Variables are filled twice: with the widest values their types allow (every input field
present) and the narrowest (required fields only). A caller allowed with the widest is
allowed whatever it sends; one allowed only with the narrowest is allowed for some
inputs (the verdict names what it may not provide); one refused with both is refused."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import product
from typing import Any

from graphql import (
    FieldNode,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLSchema,
    OperationDefinitionNode,
    parse,
    type_from_ast,
)

from domain.patients import PAYER_FACING
from domain.policy import Policy
from domain.principals import Human, Service
from domain.purposes import Purpose
from graph.enforcement.authorization import authorize
from resolvers.context import AccessRequest

SAMPLE_SCALARS: dict[str, Any] = {
    "ID": "00000000-0000-4000-8000-000000000000",
    "String": "Synthetic explain value",
    "Int": 1,
    "Float": 1.0,
    "Boolean": True,
    "Date": "2000-01-01",
    "DateTime": "2000-01-01T00:00:00Z",
}
EXPLAIN_REASON = "Policy explanation, not a real emergency"
PAYER_RESTRICTION = (
    "diagnoses the patient restricted from their health plan are left out"
    " (45 CFR 164.522(a)(1)(vi))"
)
RESEARCH_OPT_OUT = "patients who revoked research consent are not counted"


def _conditions(
    purpose: Purpose | None, reads: tuple[str, ...], roots: set[str]
) -> tuple[str, ...]:
    found = []
    if purpose in PAYER_FACING and any(c.startswith("Diagnosis.") for c in reads):
        found.append(PAYER_RESTRICTION)
    if "deidentifiedCounts" in roots:
        found.append(RESEARCH_OPT_OUT)
    return tuple(found)


@dataclass(frozen=True)
class Verdict:
    who: str  # "role CLINICIAN", "scope patients:read"
    purpose: str | None
    allowed: bool
    # Allowed only when the variables leave out some input fields (``refusals`` names
    # them); ``allowed`` is then False.
    some_inputs: bool = False
    refusals: tuple[str, ...] = ()  # "CODE Coordinate: reason", one per refused field
    reads: tuple[str, ...] = ()  # PHI schema coordinates, when allowed
    writes: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    # What the patients' own restrictions take out of the answer, when allowed.
    conditions: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "who": self.who,
            "purpose": self.purpose,
            "allowed": self.allowed,
            "allowed_for_some_inputs": self.some_inputs,
            "refusals": list(self.refusals),
            "reads": list(self.reads),
            "writes": list(self.writes),
            "categories": list(self.categories),
            "conditions": list(self.conditions),
        }


@dataclass
class Explanation:
    operation: str | None
    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def allowed_for(self) -> list[Verdict]:
        return [verdict for verdict in self.verdicts if verdict.allowed]

    @property
    def runnable(self) -> bool:
        """Someone may run it (for some inputs at least)."""
        return any(verdict.allowed or verdict.some_inputs for verdict in self.verdicts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "allowed_for": [f"{v.who} / {v.purpose or '(none)'}" for v in self.allowed_for],
            "verdicts": [verdict.as_dict() for verdict in self.verdicts],
        }


def _sample(graphql_type: Any, widest: bool, depth: int = 0) -> Any:
    if isinstance(graphql_type, GraphQLNonNull):
        return _sample(graphql_type.of_type, widest, depth)
    if isinstance(graphql_type, GraphQLList):
        return [_sample(graphql_type.of_type, widest, depth)]
    if isinstance(graphql_type, GraphQLEnumType):
        return next(iter(graphql_type.values))
    if isinstance(graphql_type, GraphQLInputObjectType):
        if depth > 5:
            return None
        return {
            name: _sample(input_field.type, widest, depth + 1)
            for name, input_field in graphql_type.fields.items()
            if widest or isinstance(input_field.type, GraphQLNonNull)
        }
    return SAMPLE_SCALARS.get(graphql_type.name, "x")


MAX_SWITCHES = 4  # Boolean variables tried both ways; past that, all true and all false


def switch_settings(
    schema: GraphQLSchema, operation: OperationDefinitionNode
) -> list[dict[str, bool]]:
    """Values for the Boolean variables (what @skip and @include read): every
    combination for a few, else all true and all false."""
    names = [
        definition.variable.name.value
        for definition in operation.variable_definitions or ()
        if getattr(type_from_ast(schema, definition.type), "of_type", None) is GraphQLBoolean
        or type_from_ast(schema, definition.type) is GraphQLBoolean
    ]
    if len(names) > MAX_SWITCHES:
        return [dict.fromkeys(names, True), dict.fromkeys(names, False)]
    return [
        dict(zip(names, values, strict=True))
        for values in product((True, False), repeat=len(names))
    ]


def sample_variables(
    schema: GraphQLSchema, operation: OperationDefinitionNode, *, widest: bool
) -> dict[str, Any]:
    """A value for every variable: every input field present (widest), or only the
    required ones."""
    values = {}
    for definition in operation.variable_definitions or ():
        variable_type = type_from_ast(schema, definition.type)
        if widest or isinstance(variable_type, GraphQLNonNull):
            values[definition.variable.name.value] = _sample(variable_type, widest)
    return values


def _callers(policy: Policy) -> Iterator[tuple[str, Any]]:
    for role in policy.roles:
        yield f"role {role.value}", Human(user_id="explain", role=role, session_id=None)
    for scope in policy.scopes:
        yield f"scope {scope.value}", Service(client_id="explain", scopes=frozenset({scope}))


def explain(
    schema: GraphQLSchema, policy: Policy, document: str, operation_name: str | None = None
) -> list[Explanation]:
    """Every operation of the document (or the one named), for every caller and purpose."""
    parsed = parse(document)
    operations = [
        definition
        for definition in parsed.definitions
        if isinstance(definition, OperationDefinitionNode)
        and (
            operation_name is None or (definition.name and definition.name.value == operation_name)
        )
    ]
    if not operations:
        raise ValueError(f"no operation named {operation_name!r} in the document")
    explained = []
    for operation in operations:
        name = operation.name.value if operation.name else None
        widest = sample_variables(schema, operation, widest=True)
        narrowest = sample_variables(schema, operation, widest=False)
        settings = switch_settings(schema, operation)
        explanation = Explanation(name)
        roots = {
            selection.name.value
            for selection in operation.selection_set.selections
            if isinstance(selection, FieldNode)
        }
        for who, principal in _callers(policy):
            for purpose in (None, *Purpose):
                access = AccessRequest(
                    principal=principal,
                    purpose_header=purpose.value if purpose else None,
                    break_glass_reason=EXPLAIN_REASON if purpose is Purpose.EMERGENCY else None,
                    policy=policy,
                )
                # Every way the Boolean variables may switch fields on and off, with every
                # input field present: allowed only if allowed in all of them.
                decisions = [
                    authorize(schema, parsed, name, {**widest, **switches}, access)[1]
                    for switches in settings
                ]
                refused = [d for d in decisions if not d.allowed]
                decision = refused[0] if refused else decisions[0]
                touched = [a for d in decisions for a in d.phi]
                some_inputs = bool(refused) and (
                    len(refused) < len(decisions)
                    or (
                        narrowest != widest
                        and authorize(schema, parsed, name, narrowest, access)[1].allowed
                    )
                )
                reads = tuple(sorted({a.coordinate for a in touched if not a.write}))
                explanation.verdicts.append(
                    Verdict(
                        who=who,
                        purpose=purpose.value if purpose else None,
                        allowed=decision.allowed,
                        some_inputs=some_inputs,
                        refusals=tuple(
                            f"{d.code} {d.coordinate}: {d.reason}" for d in decision.denials
                        ),
                        reads=reads,
                        writes=tuple(sorted({a.coordinate for a in touched if a.write})),
                        categories=tuple(sorted({str(a.data_class) for a in touched})),
                        conditions=_conditions(purpose, reads, roots) if decision.allowed else (),
                    )
                )
        explained.append(explanation)
    return explained


def render(explanations: list[Explanation]) -> str:
    """A table a reviewer reads: who may run each operation, for what, touching what;
    everyone else refused, with the first reason."""
    lines = []
    for explanation in explanations:
        lines.append(f"operation {explanation.operation or '(anonymous)'}")
        allowed = explanation.allowed_for
        if not explanation.runnable:
            lines.append("  no role or scope may run it")
        for verdict in allowed:
            touched = ", ".join(verdict.categories) or "no PHI"
            lines.append(
                f"  ALLOWED  {verdict.who:<24} {verdict.purpose or '(none)':<12} {touched}"
            )
            if verdict.reads:
                lines.append(f"           reads  {', '.join(verdict.reads)}")
            if verdict.writes:
                lines.append(f"           writes {', '.join(verdict.writes)}")
            for condition in verdict.conditions:
                lines.append(f"           but    {condition}")
        for verdict in explanation.verdicts:
            if verdict.some_inputs:
                lines.append(
                    f"  PARTLY   {verdict.who:<24} {verdict.purpose or '(none)':<12}"
                    f" allowed when the input leaves out: "
                    + ", ".join(sorted({r.split(":")[0].split()[1] for r in verdict.refusals}))
                )
        groups: dict[tuple[str, str], list[str]] = {}
        first: dict[tuple[str, str], str] = {}
        for verdict in explanation.verdicts:
            if not verdict.allowed and not verdict.some_inputs:
                reason = verdict.refusals[0] if verdict.refusals else "refused"
                code = reason.split()[0]
                groups.setdefault((verdict.who, code), []).append(verdict.purpose or "(none)")
                first.setdefault((verdict.who, code), reason)
        for (who, code), purposes in groups.items():
            lines.append(f"  refused  {who:<24} {', '.join(purposes)}: {first[who, code]}")
        lines.append("")
    return "\n".join(lines).rstrip()


# --- What a policy change changes ---------------------------------------------------------


def cells(policy: Policy) -> set[tuple[str, str, str, str]]:
    """(who, purpose, what, value): every class a caller may read or write for each
    purpose (or none), its row scope and its permissions."""
    found: set[tuple[str, str, str, str]] = set()
    subjects = [(f"role {r.value}", g) for r, g in policy.roles.items()]
    subjects += [(f"scope {s.value}", g) for s, g in policy.scopes.items()]
    for who, grant in subjects:
        found.add((who, "*", "rows", grant.row_scope.value))
        if grant.break_glass:
            found.add((who, "*", "break-glass", "reach outside its rows"))
        found |= {(who, "*", "permission", p.value) for p in grant.permissions}
        for purpose in (None, *Purpose):
            label = purpose.value if purpose else "(none)"
            found |= {(who, label, "read", c) for c in grant.readable(purpose)}
            found |= {(who, label, "write", c) for c in grant.writable(purpose)}
    return found


ROW_WIDTH = {"NONE": 0, "CARE_TEAM": 1, "ALL": 2}


@dataclass
class PolicyDiff:
    widened: list[str] = field(default_factory=list)
    narrowed: list[str] = field(default_factory=list)
    operations_allowed: list[str] = field(default_factory=list)  # newly allowed: for whom
    operations_refused: list[str] = field(default_factory=list)

    @property
    def widens(self) -> bool:
        return bool(self.widened or self.operations_allowed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "widens": self.widens,
            "widened": self.widened,
            "narrowed": self.narrowed,
            "operations_newly_allowed": self.operations_allowed,
            "operations_newly_refused": self.operations_refused,
        }


def diff(
    schema: GraphQLSchema, old: Policy, new: Policy, documents: dict[str, str] | None = None
) -> PolicyDiff:
    """Which cells change between two policies, and which of the given operations
    (name -> document) become allowed or refused for whom."""
    result = PolicyDiff()
    before, after = cells(old), cells(new)
    old_rows = {who: value for who, _, what, value in before if what == "rows"}
    new_rows = {who: value for who, _, what, value in after if what == "rows"}
    for who in sorted(set(old_rows) | set(new_rows)):
        was, now = old_rows.get(who, "NONE"), new_rows.get(who, "NONE")
        if was != now:
            line = f"{who}: rows {was} -> {now}"
            (result.widened if ROW_WIDTH[now] > ROW_WIDTH[was] else result.narrowed).append(line)
    for cell in sorted(after - before):
        if cell[2] != "rows":
            result.widened.append(_describe(cell, "may now"))
    for cell in sorted(before - after):
        if cell[2] != "rows":
            result.narrowed.append(_describe(cell, "may no longer"))
    for name, document in sorted((documents or {}).items()):
        was_allowed = _allowed(schema, old, document)
        now_allowed = _allowed(schema, new, document)
        result.operations_allowed += [f"{name}: {who}" for who in sorted(now_allowed - was_allowed)]
        result.operations_refused += [f"{name}: {who}" for who in sorted(was_allowed - now_allowed)]
    return result


def _describe(cell: tuple[str, str, str, str], verb: str) -> str:
    who, purpose, what, value = cell
    if what == "permission":
        return f"{who}: {verb} hold {value}"
    if what == "break-glass":
        return f"{who}: {verb} break the glass ({value})"
    return f"{who} / {purpose}: {verb} {what} {value}"


def _allowed(schema: GraphQLSchema, policy: Policy, document: str) -> set[str]:
    return {
        f"{verdict.who} / {verdict.purpose or '(none)'}"
        for explanation in explain(schema, policy, document)
        for verdict in explanation.allowed_for
    }
