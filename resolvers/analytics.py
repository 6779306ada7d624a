"""De-identified analytics: raw aggregates from the database, released as Safe Harbor
cells. Nothing here can name or reach a record."""

from __future__ import annotations

from db import analytics as repo
from domain.deidentification import Dimension, Released, age_band, protect, regroup, zip3
from resolvers.context import RequestContext


def _whole(_: str) -> str:
    return ""


def _code(key: str) -> str:
    return key.split(" ", 1)[0]


async def counts(ctx: RequestContext, dimension: Dimension) -> Released:
    db = ctx.db
    # Age bands and ZIP areas each partition the patients (the total is released); a
    # code's onset years add up to what DIAGNOSIS releases for the code; diagnoses
    # overlap (a patient may have several) and add up to nothing.
    if dimension is Dimension.AGE_BAND:
        totals, group = regroup(await repo.patients_by_age(db, ctx.today), age_band), _whole
    elif dimension is Dimension.ZIP3:
        totals, group = regroup(await repo.patients_by_zip3(db), zip3), _whole
    elif dimension is Dimension.DIAGNOSIS:
        totals, group = regroup(await repo.patients_by_diagnosis(db), str), None
    else:
        totals, group = regroup(await repo.patients_by_onset_year(db), str), _code
    ctx.trail.note("ANALYTICS_QUERY", f"Query.deidentifiedCounts.{dimension.value}", None)
    return protect(totals, group, partition=group is _whole)
