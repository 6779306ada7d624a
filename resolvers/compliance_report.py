"""The compliance report: one document answering what an auditor asks first. PHI access
and denials, break-glass review, breach deadlines, BAAs, account hygiene, and whether
the audit chain verifies. Counts and ids only, never PHI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from db import audit
from db import audit_queries as trail
from db import breaches as breach_repo
from db.models import Baa, BreachIncident, BreakGlassEpisode, User
from db.unit_of_work import RequestDatabase
from domain.breaches import (
    BreachStatus,
    DeadlineStatus,
    NotificationRecipient,
    RiskConclusion,
    notification_required,
    notification_schedule,
)
from domain.errors import FieldViolation, InvalidInput

EXPIRING_DAYS = 60
UNREVIEWED_HOURS = 24
MAX_PERIOD = timedelta(days=3660)


def check_period(since: datetime, until: datetime) -> None:
    if since >= until:
        raise InvalidInput([FieldViolation("to", "must be after from")])
    if until - since > MAX_PERIOD:
        raise InvalidInput([FieldViolation("to", "must be within ten years of from")])


async def build(
    db: RequestDatabase, *, since: datetime, until: datetime, now: datetime
) -> dict[str, Any]:
    check_period(since, until)
    window = {"since": since, "until": until}
    denied = trail.events.c.outcome == "DENIED"
    report: dict[str, Any] = {
        "period": {"from": since.isoformat(), "to": until.isoformat()},
        "generated_at": now.isoformat(),
        "phi_access": {
            "by_role": await trail.counts_by(db, "role", **window, where=trail.PHI_ACCESS),
            "by_purpose": await trail.counts_by(db, "purpose", **window, where=trail.PHI_ACCESS),
            "by_category": await trail.counts_by(
                db, "data_class", **window, where=trail.PHI_ACCESS
            ),
            "denials_by_reason": await trail.counts_by(db, "reason", **window, where=denied),
            "denials_by_role": await trail.counts_by(db, "role", **window, where=denied),
        },
        "break_glass": await _break_glass(db, since=since, until=until, now=now),
        "breaches": await _breaches(db, today=now.date()),
        "baas": await _baas(db, now=now),
        "accounts": await _accounts(db, now=now),
    }
    chain = await audit.verify(db.engine)
    report["audit_chain"] = {
        "verified": chain.ok,
        "links": chain.links,
        "unsealed_entries": chain.unsealed,
        "first_broken": chain.first_broken,
        "problems": chain.problems,
    }
    return report


async def _break_glass(
    db: RequestDatabase, *, since: datetime, until: datetime, now: datetime
) -> dict[str, int]:
    episodes = BreakGlassEpisode.__table__
    rows = await db.rows(
        select(episodes.c.opened_at, episodes.c.reviewed_at).where(
            episodes.c.opened_at >= since, episodes.c.opened_at < until
        )
    )
    late = now - timedelta(hours=UNREVIEWED_HOURS)
    return {
        "episodes": len(rows),
        "reviewed": sum(1 for r in rows if r.reviewed_at is not None),
        "unreviewed": sum(1 for r in rows if r.reviewed_at is None),
        "unreviewed_over_24_hours": sum(
            1 for r in rows if r.reviewed_at is None and r.opened_at < late
        ),
    }


async def _breaches(db: RequestDatabase, *, today: Any) -> dict[str, Any]:
    rows = await db.rows(select(BreachIncident.__table__).order_by(BreachIncident.discovered_at))
    ids = [row.id for row in rows]
    residents: dict[Any, dict[str, int]] = {}
    for row in await breach_repo.jurisdictions_for(db, ids):
        residents.setdefault(row.breach_id, {})[row.jurisdiction] = row.affected_count
    notices: dict[Any, list[tuple[NotificationRecipient, Any]]] = {}
    sent_log: dict[Any, list[dict[str, str]]] = {}
    for row in await breach_repo.notifications_for(db, ids):
        notices.setdefault(row.breach_id, []).append(
            (NotificationRecipient(row.recipient), row.sent_on)
        )
        sent_log.setdefault(row.breach_id, []).append(
            {"recipient": row.recipient, "method": row.method, "sent_on": row.sent_on.isoformat()}
        )
    listed = []
    tally: dict[str, int] = {status.value: 0 for status in DeadlineStatus}
    for row in rows:
        conclusion = RiskConclusion(row.risk_conclusion) if row.risk_conclusion else None
        deadlines = []
        if notification_required(conclusion, BreachStatus(row.status)):
            for notice in notification_schedule(
                row.discovered_at.date(),
                affected_count=row.affected_count,
                residents=residents.get(row.id, {}),
                law_enforcement_delay_days=row.law_enforcement_delay_days or 0,
                notices=notices.get(row.id, []),
                today=today,
            ):
                tally[notice.status.value] += 1
                deadlines.append(
                    {
                        "recipient": notice.deadline.recipient.value,
                        "jurisdiction": notice.deadline.jurisdiction,
                        "due_on": notice.deadline.due_on.isoformat(),
                        "status": notice.status.value,
                        "citation": notice.deadline.citation,
                    }
                )
        listed.append(
            {
                "id": str(row.id),
                "status": row.status,
                "timeline": {
                    "occurred_on": row.occurred_at.date().isoformat() if row.occurred_at else None,
                    "discovered_on": row.discovered_at.date().isoformat(),
                    "risk_assessed_at": row.risk_assessed_at.isoformat()
                    if row.risk_assessed_at
                    else None,
                    "risk_conclusion": row.risk_conclusion,
                    "law_enforcement_delay_days": row.law_enforcement_delay_days,
                    "notifications": sent_log.get(row.id, []),
                },
                "affected_count": row.affected_count,
                "affected_by_state": residents.get(row.id, {}),
                "phi_categories": list(row.phi_categories),
                "deadlines": deadlines,
            }
        )
    return {"count": len(rows), "deadlines_by_status": tally, "incidents": listed}


async def _baas(db: RequestDatabase, *, now: datetime) -> dict[str, Any]:
    baas = Baa.__table__
    by_status = dict(
        (await db.rows(select(baas.c.status, func.count()).group_by(baas.c.status))) or []
    )
    today = now.date()
    expiring = await db.scalar(
        select(func.count()).where(
            baas.c.status == "ACTIVE",
            baas.c.expiry_date >= today,
            baas.c.expiry_date <= today + timedelta(days=EXPIRING_DAYS),
        )
    )
    lapsed = await db.scalar(
        select(func.count()).where(baas.c.status == "ACTIVE", baas.c.expiry_date < today)
    )
    return {
        "by_status": {str(k): int(v) for k, v in by_status.items()},
        f"active_expiring_within_{EXPIRING_DAYS}_days": int(expiring or 0),
        "active_past_expiry": int(lapsed or 0),
    }


async def _accounts(db: RequestDatabase, *, now: datetime) -> dict[str, int]:
    users = User.__table__

    async def count(*where: Any) -> int:
        return int(await db.scalar(select(func.count()).select_from(users).where(*where)) or 0)

    return {
        "users": await count(),
        # Enrolment is part of creating an account (the column is NOT NULL): must be 0.
        "without_mfa": await count(users.c.totp_secret_ciphertext.is_(None)),
        "locked": await count(users.c.locked_until > now),
        "disabled": await count(users.c.status == "DISABLED"),
        "never_signed_in": await count(users.c.last_login_at.is_(None)),
    }


def default_period(now: datetime | None = None) -> tuple[datetime, datetime]:
    now = now or datetime.now(UTC)
    return now - timedelta(days=30), now
