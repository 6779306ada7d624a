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

    def clause(self, patient_id: ColumnElement[Any]) -> ColumnElement[bool]:
        if self.row_scope is RowScope.ALL:
            return true()
        actor = self.actor_uuid
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

    def settings(self) -> dict[str, str]:
        """The transaction-local settings the RLS policies read."""
        return {"phigate.row_scope": self.row_scope.value, "phigate.actor_id": self.actor_id or ""}


SYSTEM = PatientScope(RowScope.ALL, "system")
NOBODY = PatientScope(RowScope.NONE)


# Trusted system operations (seeding, key rotation) declare a row scope of ALL for their
# own transaction, which is what row-level security asks of every reader and writer.
SYSTEM_SCOPE = text(
    "SELECT set_config('phigate.row_scope', 'ALL', true),"
    " set_config('phigate.actor_id', 'system', true)"
)
