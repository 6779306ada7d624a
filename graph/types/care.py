from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import strawberry
from sqlalchemy.engine import Row

from domain.data_classes import DataClass
from graph.directives import classified
from graph.types.common import GraphInfo

PUBLIC = DataClass.PUBLIC
COMPLIANCE = DataClass.COMPLIANCE
SECURITY = DataClass.SECURITY


@strawberry.type(description="A care relationship between a workforce member and a patient.")
class CareTeamMembership:
    patient_id: strawberry.ID = classified(PUBLIC)
    user_id: strawberry.ID = classified(PUBLIC)
    added_at: datetime = classified(SECURITY)
    ends_at: datetime | None = classified(SECURITY)

    @classmethod
    def from_row(cls, row: Row[Any]) -> CareTeamMembership:
        return cls(
            patient_id=strawberry.ID(str(row.patient_id)),
            user_id=strawberry.ID(str(row.user_id)),
            added_at=row.added_at,
            ends_at=row.ends_at,
        )


@strawberry.type(description="Emergency access to a patient outside the care team.")
class BreakGlassEpisode:
    id: strawberry.ID = classified(PUBLIC)
    user_id: strawberry.ID = classified(PUBLIC)
    patient_id: strawberry.ID | None = classified(
        PUBLIC, description="Null once the patient was deleted."
    )
    reason: str = classified(COMPLIANCE)
    opened_at: datetime = classified(COMPLIANCE)
    expires_at: datetime = classified(COMPLIANCE)
    reviewed_at: datetime | None = classified(COMPLIANCE)
    reviewed_by: str | None = classified(COMPLIANCE)
    review_note: str | None = classified(COMPLIANCE)

    @classified(
        COMPLIANCE,
        description="Requests that read or wrote the patient's PHI through this episode,"
        " whatever purpose they declared.",
    )
    async def accesses(self, info: GraphInfo) -> int:
        return await info.context.loaders.episode_accesses.load(uuid.UUID(str(self.id)))

    @classmethod
    def from_row(cls, row: Row[Any]) -> BreakGlassEpisode:
        return cls(
            id=strawberry.ID(str(row.id)),
            user_id=strawberry.ID(str(row.user_id)),
            patient_id=strawberry.ID(str(row.patient_id)) if row.patient_id else None,
            reason=row.reason,
            opened_at=row.opened_at,
            expires_at=row.expires_at,
            reviewed_at=row.reviewed_at,
            reviewed_by=row.reviewed_by,
            review_note=row.review_note,
        )


@strawberry.type(description="A workforce account, as an administrator sees it (no secrets).")
class WorkforceUser:
    id: strawberry.ID = classified(PUBLIC)
    username: str = classified(SECURITY)
    role: str = classified(SECURITY)
    status: str = classified(SECURITY)
    locked_until: datetime | None = classified(SECURITY)
    last_login_at: datetime | None = classified(SECURITY)

    @classmethod
    def from_row(cls, row: Row[Any]) -> WorkforceUser:
        return cls(
            id=strawberry.ID(str(row.id)),
            username=row.username,
            role=row.role,
            status=row.status,
            locked_until=row.locked_until,
            last_login_at=row.last_login_at,
        )


@strawberry.input
class CareTeamInput:
    patient_id: strawberry.ID = classified(PUBLIC)
    user_id: strawberry.ID = classified(PUBLIC)
    ends_at: datetime | None = classified(SECURITY, default=None)


@strawberry.input
class BreakGlassReviewInput:
    id: strawberry.ID = classified(PUBLIC)
    note: str = classified(COMPLIANCE)


@strawberry.type
class CareTeamPayload:
    membership: CareTeamMembership | None = classified(PUBLIC, description="Null after a removal.")


@strawberry.type
class BreakGlassReviewPayload:
    episode: BreakGlassEpisode = classified(PUBLIC)
