"""Aggregate-only functions for de-identified analytics.

Analysts reach no patient rows (row scope NONE, enforced by row-level security). These
SECURITY DEFINER functions, owned by the schema owner, return counts of patients per
age, 3-digit ZIP, diagnosis code or onset year: never a row, an id or a finer date.
The gateway turns them into Safe Harbor cells (bands, 000 areas, small-cell
suppression) before anything leaves.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

FUNCTIONS = {
    "deid_patients_by_age(as_of date)": (
        "TABLE(age integer, patients bigint)",
        "SELECT extract(year FROM age(as_of, date_of_birth))::integer, count(*)"
        " FROM phigate.patients GROUP BY 1",
    ),
    "deid_patients_by_zip3()": (
        "TABLE(zip3 text, patients bigint)",
        "SELECT left(address_postal_code, 3), count(*) FROM phigate.patients GROUP BY 1",
    ),
    "deid_patients_by_diagnosis()": (
        "TABLE(icd10_code text, patients bigint)",
        "SELECT icd10_code, count(DISTINCT patient_id) FROM phigate.diagnoses GROUP BY 1",
    ),
    "deid_patients_by_onset_year()": (
        "TABLE(icd10_code text, onset_year integer, patients bigint)",
        "SELECT icd10_code, extract(year FROM onset_date)::integer, count(DISTINCT patient_id)"
        " FROM phigate.diagnoses WHERE onset_date IS NOT NULL GROUP BY 1, 2",
    ),
}


def upgrade() -> None:
    op.execute("SET LOCAL ROLE phigate_owner")
    for signature, (returns, body) in FUNCTIONS.items():
        op.execute(
            f"CREATE FUNCTION phigate.{signature} RETURNS {returns}"
            " LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog"
            f" AS $$ {body} $$"
        )
        op.execute(f"REVOKE ALL ON FUNCTION phigate.{signature} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION phigate.{signature} TO phigate_app")
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute("SET LOCAL ROLE phigate_owner")
    for signature in FUNCTIONS:
        op.execute(f"DROP FUNCTION phigate.{signature}")
    op.execute("RESET ROLE")
