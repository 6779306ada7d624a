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
    # A patient who revoked research consent is counted for no purpose: counting them
    # for one purpose and not another would let the difference say where they are.
    research = True
    if dimension is Dimension.AGE_BAND:
        rows = await repo.patients_by_age(db, ctx.today, research=research)
        totals, group = regroup(rows, age_band), _whole
    elif dimension is Dimension.ZIP3:
        totals, group = regroup(await repo.patients_by_zip3(db, research=research), zip3), _whole
    elif dimension is Dimension.DIAGNOSIS:
        totals, group = regroup(await repo.patients_by_diagnosis(db, research=research), str), None
    else:
        rows = await repo.patients_by_onset_year(db, research=research)
        totals, group = regroup(rows, str), _code
    ctx.trail.note("ANALYTICS_QUERY", f"Query.deidentifiedCounts.{dimension.value}", None)
    return protect(totals, group, partition=group is _whole)
