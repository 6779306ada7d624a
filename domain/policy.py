"""The minimum-necessary policy: loaded from policy.toml, validated strictly (an unknown
name is an error, not a silent deny), and asked per (principal, purpose)."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from typing import Any

from domain.data_classes import DataClass, PhiCategory
from domain.permissions import Permission, RowScope
from domain.principals import Human, Principal, Service
from domain.purposes import Purpose
from domain.roles import Role, ServiceScope

PHI = frozenset(category.value for category in PhiCategory)
DATA_CLASSES = PHI | frozenset(member.value for member in DataClass)
ANY_PURPOSE = "*"
_SCOPE_ORDER = {RowScope.NONE: 0, RowScope.CARE_TEAM: 1, RowScope.ALL: 2}


class PolicyError(ValueError):
    """The policy file is wrong; the message names where."""


@dataclass(frozen=True)
class Grant:
    """What one role (or the union of a service's scopes) may do."""

    permissions: frozenset[Permission] = frozenset()
    row_scope: RowScope = RowScope.NONE
    break_glass: bool = False
    read: Mapping[Purpose | None, frozenset[str]] = field(default_factory=dict)
    write: Mapping[Purpose | None, frozenset[str]] = field(default_factory=dict)

    @property
    def purposes(self) -> frozenset[Purpose]:
        return frozenset(p for p in (*self.read, *self.write) if p is not None)

    def readable(self, purpose: Purpose | None) -> frozenset[str]:
        return self.read.get(None, frozenset()) | (
            self.read.get(purpose, frozenset()) if purpose else frozenset()
        )

    def writable(self, purpose: Purpose | None) -> frozenset[str]:
        return self.write.get(None, frozenset()) | (
            self.write.get(purpose, frozenset()) if purpose else frozenset()
        )

    def union(self, other: Grant) -> Grant:
        def merge(
            a: Mapping[Any, frozenset[str]], b: Mapping[Any, frozenset[str]]
        ) -> dict[Any, frozenset[str]]:
            return {key: a.get(key, frozenset()) | b.get(key, frozenset()) for key in {*a, *b}}

        return Grant(
            permissions=self.permissions | other.permissions,
            row_scope=max(self.row_scope, other.row_scope, key=_SCOPE_ORDER.__getitem__),
            break_glass=self.break_glass or other.break_glass,
            read=merge(self.read, other.read),
            write=merge(self.write, other.write),
        )


@dataclass(frozen=True)
class Policy:
    roles: Mapping[Role, Grant]
    scopes: Mapping[ServiceScope, Grant]

    def row_scopes(self) -> dict[str, RowScope]:
        """Each role's and scope's row scope, named as the database names them."""
        return {
            **{f"role:{role.value}": grant.row_scope for role, grant in self.roles.items()},
            **{f"scope:{scope.value}": grant.row_scope for scope, grant in self.scopes.items()},
        }

    def grant(self, principal: Principal | None) -> Grant:
        if isinstance(principal, Human):
            return self.roles[principal.role]
        if isinstance(principal, Service):
            combined = Grant()
            for scope in sorted(principal.scopes):
                combined = combined.union(self.scopes.get(scope, Grant()))
            return combined
        return Grant()

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Policy:
        unknown_sections = set(data) - {"roles", "scopes"}
        if unknown_sections:
            raise PolicyError(f"unknown section(s): {', '.join(sorted(unknown_sections))}")
        roles = {
            _enum(Role, name, "role"): _grant(f"roles.{name}", body)
            for name, body in data.get("roles", {}).items()
        }
        missing = [role.value for role in Role if role not in roles]
        if missing:
            raise PolicyError(
                f"no entry for role(s): {', '.join(missing)} (unlisted would mean silently denied)"
            )
        scopes = {
            _enum(ServiceScope, name, "scope"): _grant(f"scopes.{name}", body)
            for name, body in data.get("scopes", {}).items()
        }
        return cls(roles=roles, scopes=scopes)

    def matrix(self) -> list[dict[str, str]]:
        """One row per (role or scope, purpose): what it reads and writes."""
        rows = []
        subjects: list[tuple[str, Grant]] = [(r.value, g) for r, g in self.roles.items()]
        subjects += [(f"scope {s.value}", g) for s, g in self.scopes.items()]
        for subject, grant in subjects:
            for purpose in [None, *sorted(grant.purposes)]:
                rows.append(
                    {
                        "who": subject,
                        "purpose": purpose.value if purpose else "(any or none)",
                        "reads": ", ".join(sorted(grant.readable(purpose))) or "-",
                        "writes": ", ".join(sorted(grant.writable(purpose))) or "-",
                        "rows": grant.row_scope.value,
                        "permissions": ", ".join(sorted(p.value for p in grant.permissions)) or "-",
                    }
                )
        return rows


def _enum(kind: Any, value: str, what: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        known = ", ".join(member.value for member in kind)
        raise PolicyError(f"unknown {what} '{value}' (known: {known})") from None


def _classes(where: str, values: Iterable[str]) -> frozenset[str]:
    values = list(values)
    unknown = [v for v in values if v not in DATA_CLASSES]
    if unknown:
        raise PolicyError(f"{where}: unknown data class(es) {', '.join(unknown)}")
    return frozenset(values)


def _purpose_map(where: str, body: Mapping[str, Any]) -> dict[Purpose | None, frozenset[str]]:
    mapped: dict[Purpose | None, frozenset[str]] = {}
    for purpose_name, classes in body.items():
        key = (
            None
            if purpose_name == ANY_PURPOSE
            else _enum(Purpose, purpose_name, f"purpose in {where}")
        )
        mapped[key] = _classes(f"{where}.{purpose_name}", classes)
        if key is None and mapped[key] & PHI:
            phi = ", ".join(sorted(mapped[key] & PHI))
            raise PolicyError(f"{where}.*: PHI ({phi}) must be tied to a purpose of use")
    return mapped


def _grant(where: str, body: Mapping[str, Any]) -> Grant:
    allowed = {"permissions", "row_scope", "break_glass", "read", "write"}
    unknown = set(body) - allowed
    if unknown:
        raise PolicyError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    return Grant(
        permissions=frozenset(
            _enum(Permission, p, f"permission in {where}") for p in body.get("permissions", [])
        ),
        row_scope=_enum(RowScope, body.get("row_scope", "NONE"), f"row_scope in {where}"),
        break_glass=bool(body.get("break_glass", False)),
        read=_purpose_map(f"{where}.read", body.get("read", {})),
        write=_purpose_map(f"{where}.write", body.get("write", {})),
    )


def parse_policy(text: str) -> Policy:
    try:
        return Policy.from_mapping(tomllib.loads(text))
    except tomllib.TOMLDecodeError as error:
        raise PolicyError(f"not valid TOML: {error}") from None


@cache
def bundled_policy() -> Policy:
    return parse_policy(files("domain").joinpath("policy.toml").read_text(encoding="utf-8"))
