"""Errors callers may see: a stable code, a message that names the field and the rule,
the request id; never a submitted value, a stack trace, SQL or an internal name.

graphql-core quotes the offending value in its coercion and validation messages (an
invalid birth date is still PHI), so those messages are rebuilt from their safe parts.
As a last net, any quoted token that is not a name from the schema or from the
document's own field/argument/variable names is redacted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import structlog
from graphql import GraphQLError, GraphQLSchema, Visitor, visit
from graphql.error import GraphQLSyntaxError
from graphql.language import (
    ArgumentNode,
    DocumentNode,
    EnumValueNode,
    ListValueNode,
    Node,
    ObjectValueNode,
)

from db.crypto import DecryptionError
from db.errors import ConstraintViolation
from domain.errors import DomainError, InvalidInput
from graph.http.responses import UNAVAILABLE_MESSAGE, database_unavailable
from graph.logs import describe_exception
from graph.scalars import ScalarRuleError

log = structlog.get_logger("phigate.errors")

INTERNAL_ERROR = "INTERNAL_ERROR"
BAD_USER_INPUT = "BAD_USER_INPUT"
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
CONFLICT = "CONFLICT"
AUDIT_UNAVAILABLE = "AUDIT_UNAVAILABLE"
DATA_INTEGRITY = "DATA_INTEGRITY"
LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
TIMEOUT = "TIMEOUT"
ENFORCEMENT_FAILED = "ENFORCEMENT_FAILED"
SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"

INTERNAL_MESSAGE = "Internal error. Quote the request id to your administrator."
AUDIT_MESSAGE = (
    "The audit trail could not record this request, so it was not carried out. Retry later."
)
DATA_INTEGRITY_MESSAGE = (
    "A protected value failed its integrity check (altered, moved, or its key is not"
    " configured) and was not returned. Quote the request id to your administrator."
)
ENFORCEMENT_MESSAGE = (
    "The request touched data its access decision did not cover, so nothing was returned"
    " or written. This is a defect in phigate; quote the request id to your administrator."
)
CONFLICT_MESSAGE = (
    "The change conflicts with existing data (a value that must be unique is in use)."
)

_VARIABLE = re.compile(
    r"^Variable '\$(\w+)' has invalid value(?: at ((?:\.\w+|\[\d+\])+))?: (.*)$", re.S
)
_ENUM = re.compile(r"Value .* does not exist in '(\w+)' enum", re.S)
_REQUIRED_FIELD = re.compile(r"^Expected value of type '([^']+)' to include required field '(\w+)'")
_UNKNOWN_FIELD = re.compile(
    r"^Expected value of type '([^']+)' not to include unknown field '([^']*)'"
)
_OBJECT = re.compile(r"^Expected value of type '([^']+)' to be an object")
_NOT_NULL = re.compile(r"^Expected non-nullable type '([^']+)' not to be null")
_SCALAR = re.compile(r"^(Int|Float|String|Boolean|ID) cannot represent")
_EXPECTED = re.compile(r"^Expected value of type '([^']+)'")
_SUGGESTION = re.compile(r"\s*Did you mean .*?\?", re.S)
_QUOTED = re.compile(r"'([^']*)'|\"([^\"]*)\"")
_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")


def _input_reason(error: GraphQLError | None) -> str:
    """What rule an input value broke, from graphql-core's inner error."""
    if error is None:
        return "is not valid"
    cause = error.original_error
    if isinstance(cause, ScalarRuleError):
        return str(cause)
    message = error.message
    for pattern, reason in (
        (_ENUM, "must be one of the values of the {0} enum"),
        (_REQUIRED_FIELD, "is missing the required field '{1}'"),
        (_UNKNOWN_FIELD, "has a field that {0} does not define"),
        (_OBJECT, "must be an object of type {0}"),
        (_NOT_NULL, "must not be null"),
        (_SCALAR, "must be a valid {0}"),
        (_EXPECTED, "must be a valid {0}"),
    ):
        match = pattern.search(message)
        if match:
            return reason.format(*match.groups())
    return "is not valid"


def _literal_path(document: DocumentNode | None, target: Node | None) -> str | None:
    """Where in the document a literal sits, as ``argument.field[index]``."""
    if document is None or target is None:
        return None

    def search(node: Node, path: str) -> str | None:
        if node is target:
            return path
        if isinstance(node, ObjectValueNode):
            for item in node.fields:
                found = search(item.value, f"{path}.{item.name.value}")
                if found:
                    return found
        elif isinstance(node, ListValueNode):
            for index, item in enumerate(node.values):
                found = search(item, f"{path}[{index}]")
                if found:
                    return found
        return None

    class Find(Visitor):
        found: str | None = None

        def enter_argument(self, node: ArgumentNode, *_: Any) -> Any:
            self.found = self.found or search(node.value, node.name.value)

    finder = Find()
    visit(document, finder)
    return finder.found


_LIMITS = (
    (re.compile(r"exceeds maximum operation depth of (\d+)"), "depth"),
    (re.compile(r"aliases found\. Allowed: (\d+)"), "aliases"),
    (re.compile(r"Document contains more than (\d+) tokens"), "tokens"),
)


def limit_of(error: GraphQLError) -> str | None:
    """Which query limit an error reports (before or after our rewriting), if any."""
    extensions = error.extensions or {}
    if extensions.get("code") == LIMIT_EXCEEDED:
        return str(extensions.get("limit") or "unknown")
    for pattern, limit in _LIMITS:
        if pattern.search(error.message):
            return limit
    return None


def _rewrite_pre_execution(error: GraphQLError, document: DocumentNode | None) -> tuple[str, str]:
    for pattern, limit in _LIMITS:
        hit = pattern.search(error.message)
        if hit:
            return LIMIT_EXCEEDED, f"The query exceeds the {limit} limit ({hit.group(1)})."
    if isinstance(error, GraphQLSyntaxError):
        return PARSE_FAILED, error.message
    message = error.message
    variable = _VARIABLE.match(message)
    if variable:
        name, path, _ = variable.groups()
        inner = error.original_error if isinstance(error.original_error, GraphQLError) else None
        where = f" at '{name}{path}'" if path else ""
        return BAD_USER_INPUT, f"Variable '${name}'{where} {_input_reason(inner)}."
    if any(pattern.search(message) for pattern in (_EXPECTED, _SCALAR, _ENUM, _NOT_NULL)):
        path = _literal_path(document, error.nodes[0] if error.nodes else None)
        subject = f"Argument '{path}'" if path else "An argument value"
        return BAD_USER_INPUT, f"{subject} {_input_reason(error)}."
    return VALIDATION_FAILED, message


def _document_names(document: DocumentNode | None) -> set[str]:
    """Names the caller wrote as fields, arguments, aliases, fragments and variables:
    echoing those back is fine. Enum literals and strings are values, not names."""
    names: set[str] = set()
    if document is None:
        return names

    class Collect(Visitor):
        def enter_name(self, node: Any, key: Any, parent: Any, *_: Any) -> None:
            if not isinstance(parent, EnumValueNode):
                names.add(node.value)

    visit(document, Collect())
    return names


def schema_names(schema: GraphQLSchema) -> frozenset[str]:
    names: set[str] = {directive.name for directive in schema.directives}
    for type_name, graphql_type in schema.type_map.items():
        names.add(type_name)
        for attribute in ("fields", "values"):
            members = getattr(graphql_type, attribute, None) or {}
            names.update(members)
            for member in members.values():
                names.update(getattr(member, "args", None) or {})
    for directive in schema.directives:
        names.update(directive.args)
    return frozenset(names)


def _redact(message: str, allowed: set[str] | frozenset[str]) -> str:
    def keep_or_redact(match: re.Match[str]) -> str:
        token = match.group(1) if match.group(1) is not None else match.group(2)
        parts = [p for p in re.split(r"[.\[\]!$]+", token) if p and not p.isdigit()]
        if parts and all(_NAME.fullmatch(p) and p in allowed for p in parts):
            return match.group(0)
        return "'…'"

    return _QUOTED.sub(keep_or_redact, _SUGGESTION.sub("", message))


def safe_error(
    error: GraphQLError,
    *,
    request_id: str,
    allowed_names: Iterable[str],
    document: DocumentNode | None = None,
) -> GraphQLError:
    """The caller's view of one error. Idempotent: an error that already carries our
    code passes through unchanged."""
    extensions = dict(error.extensions or {})
    if "code" in extensions and extensions.get("requestId") == request_id:
        return error
    cause = error.original_error
    fields: list[dict[str, str]] | None = None
    if isinstance(cause, DomainError):
        code, message = cause.code, cause.message
        if isinstance(cause, InvalidInput):
            fields = [{"field": v.field, "rule": v.rule} for v in cause.violations]
    elif isinstance(cause, ConstraintViolation):
        code, message = CONFLICT, CONFLICT_MESSAGE
    elif isinstance(cause, DecryptionError):
        # Never garbage: the field is null with this error, and the log says why.
        log.error("decryption_failed", reason=str(cause), **describe_exception(cause))
        code, message = DATA_INTEGRITY, DATA_INTEGRITY_MESSAGE
    elif cause is None or isinstance(cause, GraphQLError | ScalarRuleError):
        code, message = _rewrite_pre_execution(error, document)
        message = _redact(message, set(allowed_names) | _document_names(document))
    elif database_unavailable(cause):
        log.error("database_unavailable", **describe_exception(cause))
        code, message = SERVICE_UNAVAILABLE, UNAVAILABLE_MESSAGE
    else:
        log.error("resolver_failed", **describe_exception(cause))
        code, message = INTERNAL_ERROR, INTERNAL_MESSAGE
    extensions = {"code": code, "requestId": request_id}
    if fields:
        extensions["fields"] = fields
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions=extensions,
    )


def masked(code: str, message: str, *, request_id: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code, "requestId": request_id})
