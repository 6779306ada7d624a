from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from db.unit_of_work import RequestDatabase
from domain.principals import Principal
from resolvers.loaders import Loaders


@dataclass(frozen=True, slots=True)
class PageLimits:
    default: int = 20
    maximum: int = 100


@dataclass(frozen=True, slots=True)
class RequestMeta:
    """Where a request came from: the audit trail's "where" (never PHI)."""

    request_id: str
    client_ip: str | None = None
    user_agent: str | None = None


@dataclass(slots=True)
class RequestContext:
    db: RequestDatabase
    meta: RequestMeta
    now: datetime
    principal: Principal | None = None
    page_limits: PageLimits = field(default_factory=PageLimits)
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self.loaders = Loaders(self.db)

    @property
    def today(self) -> date:
        return self.now.date()
