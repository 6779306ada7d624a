from __future__ import annotations


class ConstraintViolation(Exception):
    """A statement broke a named constraint. Carries the constraint's name only: the
    driver's message quotes the offending values."""

    def __init__(self, constraint: str | None) -> None:
        super().__init__(f"constraint violated: {constraint or 'unknown'}")
        self.constraint = constraint
