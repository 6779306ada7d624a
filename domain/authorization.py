"""Deciding a whole operation before it runs: every field it reads and every input
field it writes, against the caller's grant and declared purpose of use."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from domain.data_classes import DataClass
from domain.permissions import Permission
from domain.policy import PHI, Grant
from domain.purposes import Purpose

PUBLIC = DataClass.PUBLIC.value


@dataclass(frozen=True, slots=True)
class Access:
    """One field an operation touches."""

    coordinate: str  # schema coordinate: "Patient.ssn", "PatientUpdateInput.phone"
    path: str  # where in the operation: "patients.edges.node.ssn", "patientUpdate.input.phone"
    data_class: str | None  # None: the field carries no classification
    permission: Permission | None = None
    write: bool = False
    # An argument or input field (a value the caller provides), not a selected field.
    input: bool = False
    # Where the selected field's node starts in the document: the runtime guard knows a
    # field it resolves by it (see graph/enforcement/guard.py). -1 for inputs.
    node: int = -1


@dataclass(frozen=True, slots=True)
class Denial:
    code: str
    coordinate: str
    path: str
    reason: str
    write: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    denials: tuple[Denial, ...]
    # The PHI an allowed operation reads and writes, by path: the audit trail joins these
    # with the records each path returned.
    phi: tuple[Access, ...] = ()
    # What the runtime guard lets through: the document positions of every PHI field the
    # decision allowed to be read, and the coordinates of every PHI argument and input
    # field it allowed to be provided. Anything else resolved or applied is a defect.
    phi_nodes: frozenset[int] = frozenset()
    phi_inputs: frozenset[str] = frozenset()

    @property
    def phi_fields(self) -> frozenset[str]:
        return frozenset(access.coordinate for access in self.phi if not access.write)

    @property
    def allowed(self) -> bool:
        return not self.denials


# A reason a reviewer can read: words, not punctuation or a repeated key.
MIN_REASON_WORDS = 3
MIN_REASON_LETTERS = 10
_WORD = re.compile(r"[^\W\d_]{2,}")


def is_written_reason(text: str) -> bool:
    words = _WORD.findall(text)
    return (
        len(words) >= MIN_REASON_WORDS
        and len({word.casefold() for word in words}) >= 2
        and sum(map(len, words)) >= MIN_REASON_LETTERS
    )


def decide(grant: Grant, who: str, purpose: Purpose | None, accesses: Iterable[Access]) -> Decision:
    denials: list[Denial] = []
    phi: list[Access] = []
    nodes: set[int] = set()
    inputs: set[str] = set()
    for access in accesses:
        if access.permission is not None and access.permission not in grant.permissions:
            denials.append(
                Denial(
                    "FORBIDDEN_OPERATION",
                    access.coordinate,
                    access.path,
                    f"{who} does not hold the permission {access.permission.value}",
                    access.write,
                )
            )
            continue
        if access.data_class is None:
            denials.append(
                Denial(
                    "UNCLASSIFIED_FIELD",
                    access.coordinate,
                    access.path,
                    "the field is not classified",
                    access.write,
                )
            )
            continue
        if access.write and access.data_class == PUBLIC:
            continue  # ids and references select what to write; they are not written
        allowed = grant.writable(purpose) if access.write else grant.readable(purpose)
        if access.data_class in allowed:
            if access.data_class in PHI:
                phi.append(access)
                if access.input:
                    inputs.add(access.coordinate)
                else:
                    nodes.add(access.node)
            continue
        verb = "write" if access.write else "read"
        if purpose is None and access.data_class in PHI:
            denials.append(
                Denial(
                    "PURPOSE_REQUIRED",
                    access.coordinate,
                    access.path,
                    f"{access.data_class} is PHI: declare a purpose of use"
                    f" (X-Purpose-Of-Use) to {verb} it",
                    access.write,
                )
            )
        else:
            stated = purpose.value if purpose else "no declared purpose"
            denials.append(
                Denial(
                    "FORBIDDEN_FIELD",
                    access.coordinate,
                    access.path,
                    f"{who} may not {verb} {access.data_class} data for {stated}",
                    access.write,
                )
            )
    if denials:
        return Decision(tuple(denials))
    return Decision((), _innermost(phi), frozenset(nodes), frozenset(inputs))


def _innermost(phi: list[Access]) -> tuple[Access, ...]:
    """A PHI container (``Patient.address``) needs no entry of its own when PHI inside it
    (``Address.state``) is recorded; alone (``diagnoses { id }``) it still discloses."""
    unique = list(dict.fromkeys(phi))
    return tuple(
        access
        for access in unique
        if not any(
            other.path.startswith(access.path + ".") and other.write == access.write
            for other in unique
        )
    )


def purpose_denial(
    grant: Grant, who: str, raw: str | None, *, has_reason: bool
) -> tuple[Purpose | None, Denial | None]:
    """The declared purpose, or why it cannot be used."""
    if raw is None or raw == "":
        return None, None
    try:
        purpose = Purpose(raw.strip().upper())
    except ValueError:
        known = ", ".join(p.value for p in Purpose)
        return None, Denial(
            "PURPOSE_UNKNOWN", "X-Purpose-Of-Use", "", f"the purpose of use must be one of {known}"
        )
    if purpose not in grant.purposes:
        return purpose, Denial(
            "PURPOSE_NOT_ALLOWED",
            "X-Purpose-Of-Use",
            "",
            f"{who} may not act for the purpose {purpose.value}",
        )
    if purpose is Purpose.EMERGENCY and not has_reason:
        return purpose, Denial(
            "BREAK_GLASS_REASON_REQUIRED",
            "X-Break-Glass-Reason",
            "",
            "emergency access needs a written reason in X-Break-Glass-Reason: at least"
            f" {MIN_REASON_WORDS} words, {MIN_REASON_LETTERS} letters in all",
        )
    return purpose, None
