from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Generic, TypeVar

from domain.errors import IllegalTransition

S = TypeVar("S", bound=StrEnum)


class Lifecycle(Generic[S]):
    """A state machine given as the set of states each state may move to."""

    def __init__(self, kind: str, transitions: Mapping[S, frozenset[S]]) -> None:
        self.kind = kind
        self._transitions = dict(transitions)

    def allowed_from(self, current: S) -> frozenset[S]:
        return self._transitions.get(current, frozenset())

    def can_move(self, current: S, target: S) -> bool:
        return target in self.allowed_from(current)

    def require(self, current: S, target: S) -> None:
        if not self.can_move(current, target):
            allowed = tuple(sorted(s.value for s in self.allowed_from(current)))
            raise IllegalTransition(self.kind, current.value, target.value, allowed)
