"""Which patients a caller reaches, as a SQL predicate: the resolver-side twin of the
row-level security policies (defence in depth: either alone would hold)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, exists, false, func, or_, select, text, true

from db.models import BreakGlassEpisode, CareTeamMember
from domain.permissions import RowScope

members = CareTeamMember.__table__
episodes = BreakGlassEpisode.__table__


@dataclass(frozen=True, slots=True)
class PatientScope:
    row_scope: RowScope
    actor_id: str | None = None

    @property
    def actor_uuid(self) -> uuid.UUID | None:
        try:
            return uuid.UUID(self.actor_id) if self.actor_id else None
        except ValueError:
            return None

    def clause(self, patient_id: ColumnElement[Any], actor: Any = None) -> ColumnElement[bool]:
        """The rows this scope reaches. ``actor`` replaces the caller's id (a bound
        parameter, for a statement compiled once and run for many callers)."""
        if self.row_scope is RowScope.ALL:
            return true()
        actor = self.actor_uuid if actor is None else actor
        if self.row_scope is not RowScope.CARE_TEAM or actor is None:
            return false()
        in_care_team = exists(
            select(1).where(
                members.c.patient_id == patient_id,
                members.c.user_id == actor,
                or_(members.c.ends_at.is_(None), members.c.ends_at > func.now()),
            )
        )
        glass_broken = exists(
            select(1).where(
                episodes.c.patient_id == patient_id,
                episodes.c.user_id == actor,
                episodes.c.expires_at > func.now(),
            )
        )
        return or_(in_care_team, glass_broken)


SYSTEM = PatientScope(RowScope.ALL, "system")
NOBODY = PatientScope(RowScope.NONE)


class OwnerConnectionRequired(Exception):
    """A system operation (seeding, retention, key rotation, the CLI's report) ran on a
    connection that row-level security binds: it would see no patient rows."""

    def __init__(self) -> None:
        super().__init__(
            "this command reads or changes every patient's record, which only the schema"
            " owner may do: set PHIGATE_MIGRATION_DATABASE_URL (the application role sees"
            " no patient rows without a caller's live session)"
        )


async def require_owner(connection: Any) -> None:
    """System operations run as the schema owner (the migration connection), which
    row-level security does not bind; the application role has no way to claim every
    row for itself. Fails loudly instead of silently finding nothing."""
    if await connection.scalar(text("SELECT row_security_active('phigate.patients')")):
        raise OwnerConnectionRequired()


_WIDTH = {RowScope.NONE: 0, RowScope.CARE_TEAM: 1, RowScope.ALL: 2}


async def row_scope_ceilings(connection: Any) -> dict[str, RowScope]:
    """The database's row scope per grantee (``role:NAME``, ``scope:NAME``)."""
    rows = await connection.execute(
        text("SELECT grantee, row_scope FROM phigate.row_scope_ceilings")
    )
    return {grantee: RowScope(scope) for grantee, scope in rows}


def wider_than_database(wanted: dict[str, RowScope], ceilings: dict[str, RowScope]) -> list[str]:
    """Grantees a policy gives more rows than row-level security will let them reach."""
    return sorted(
        f"{grantee} asks for {scope.value} rows, the database allows"
        f" {ceilings.get(grantee, RowScope.NONE).value}"
        for grantee, scope in wanted.items()
        if _WIDTH[scope] > _WIDTH[ceilings.get(grantee, RowScope.NONE)]
    )


async def apply_row_scopes(connection: Any, wanted: dict[str, RowScope]) -> None:
    """Make the database's ceilings those of a policy (schema owner only)."""
    await require_owner(connection)
    for grantee, scope in wanted.items():
        await connection.execute(
            text(
                "INSERT INTO phigate.row_scope_ceilings (grantee, row_scope) VALUES (:g, :s)"
                " ON CONFLICT (grantee) DO UPDATE SET row_scope = excluded.row_scope"
            ),
            {"g": grantee, "s": scope.value},
        )
