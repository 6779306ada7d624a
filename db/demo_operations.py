"""Registered operations for the demo: the console's library shows each role the ones it
may run (a comment at the top of a document is its description)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from db import operations

DEMO_OPERATIONS = (
    """# Patients by age band (ten-year bands; 90 and over together). Cells under the minimum
# size are suppressed, with a complement where one would reveal another.
query PatientsByAgeBand {
  deidentifiedCounts(by: AGE_BAND) { minimumCellSize total cells { key patients suppressed } }
}
""",
    """# Patients by the first three digits of their ZIP code (Safe Harbor's ZIP3; areas of
# 20,000 people or fewer report as 000).
query PatientsByZip3 {
  deidentifiedCounts(by: ZIP3) { minimumCellSize total cells { key patients suppressed } }
}
""",
    """# Patients by diagnosis (ICD-10 code). A patient with several diagnoses counts in each.
query PatientsByDiagnosis {
  deidentifiedCounts(by: DIAGNOSIS) { minimumCellSize cells { key patients suppressed } }
}
""",
    """# Patients by diagnosis and year of onset.
query PatientsByOnsetYear {
  deidentifiedCounts(by: DIAGNOSIS_ONSET_YEAR) { minimumCellSize cells { key patients suppressed } }
}
""",
    """# Breaches whose notification deadline falls within the next two weeks.
query BreachDeadlines {
  breachDeadlines(withinDays: 14) { id status discoveredAt }
}
""",
)


async def register_demo_operations(engine: AsyncEngine) -> int:
    from graph.execution.persisted import digest

    for document in DEMO_OPERATIONS:
        await operations.store(
            engine, digest(document), document, source="REGISTERED", registered_by="seed-demo"
        )
    return len(DEMO_OPERATIONS)
