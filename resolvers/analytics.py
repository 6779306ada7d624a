"""De-identified analytics: raw aggregates from the database, released as Safe Harbor
cells. Nothing here can name or reach a record."""

from __future__ import annotations

from db import analytics as repo
from domain.deidentification import Cell, Dimension, age_band, cells, regroup, zip3
from resolvers.context import RequestContext


async def counts(ctx: RequestContext, dimension: Dimension) -> list[Cell]:
    db = ctx.db
    if dimension is Dimension.AGE_BAND:
        totals = regroup(await repo.patients_by_age(db, ctx.today), age_band)
    elif dimension is Dimension.ZIP3:
        totals = regroup(await repo.patients_by_zip3(db), zip3)
    elif dimension is Dimension.DIAGNOSIS:
        totals = regroup(await repo.patients_by_diagnosis(db), str)
    else:
        totals = regroup(await repo.patients_by_onset_year(db), str)
    ctx.trail.note("ANALYTICS_QUERY", f"Query.deidentifiedCounts.{dimension.value}", None)
    return cells(totals)
