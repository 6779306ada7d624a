from __future__ import annotations

from dataclasses import dataclass


class DomainError(Exception):
    """A rule was broken. ``code`` is stable and machine-readable; ``message`` never
    contains a submitted value, so it is safe to show to callers and to log."""

    code = "DOMAIN_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class FieldViolation:
    field: str
    rule: str

    def __str__(self) -> str:
        return f"{self.field} {self.rule}"


class InvalidInput(DomainError):
    code = "BAD_USER_INPUT"

    def __init__(self, violations: list[FieldViolation]) -> None:
        self.violations = violations
        super().__init__("Invalid input: " + "; ".join(str(v) for v in violations) + ".")


class NotFound(DomainError):
    code = "NOT_FOUND"

    def __init__(self, kind: str, field: str) -> None:
        self.field = field
        super().__init__(f"No {kind} exists with the id given in {field}.")


class Conflict(DomainError):
    code = "CONFLICT"

    def __init__(self, field: str, rule: str) -> None:
        self.field = field
        super().__init__(f"{field} {rule}.")


class IllegalTransition(DomainError):
    code = "ILLEGAL_TRANSITION"

    def __init__(self, kind: str, current: str, target: str, allowed: tuple[str, ...]) -> None:
        options = ", ".join(allowed) if allowed else "none (final state)"
        super().__init__(
            f"A {kind} cannot move from {current} to {target}; allowed from {current}: {options}."
        )


class Violations:
    """Collects every broken rule of one input so the caller hears all of them at once."""

    def __init__(self) -> None:
        self._items: list[FieldViolation] = []

    def check(self, field: str, rule: str | None) -> None:
        if rule is not None:
            self._items.append(FieldViolation(field, rule))

    def raise_if_any(self) -> None:
        if self._items:
            raise InvalidInput(list(self._items))

    def __bool__(self) -> bool:
        return bool(self._items)
