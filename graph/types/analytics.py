from __future__ import annotations

import strawberry

from domain import deidentification
from domain.data_classes import DataClass
from graph.directives import classified

DEIDENTIFIED = DataClass.DEIDENTIFIED

AnalyticsDimension = strawberry.enum(deidentification.Dimension, name="AnalyticsDimension")


@strawberry.type(description="Patients in one cell; null when under 11 (suppressed).")
class CountCell:
    key: str = classified(
        DEIDENTIFIED,
        description="An age band (90+ for the oldest), a 3-digit ZIP (000 for sparse areas),"
        " an ICD-10-CM code, or a code and a year.",
    )
    patients: int | None = classified(DEIDENTIFIED)
    suppressed: bool = classified(DEIDENTIFIED)


@strawberry.type(description="Counts released under HIPAA Safe Harbor.")
class DeidentifiedCounts:
    dimension: AnalyticsDimension = classified(DEIDENTIFIED)
    method: str = classified(DEIDENTIFIED)
    minimum_cell_size: int = classified(DEIDENTIFIED)
    cells: list[CountCell] = classified(DEIDENTIFIED)
    total: int | None = classified(
        DEIDENTIFIED,
        description="Patients in all cells, for AGE_BAND and ZIP3 (each patient is in one);"
        " null for diagnoses (a patient may have several) and under 11.",
    )
