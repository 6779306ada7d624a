"""Patient restrictions: a diagnosis withheld from the health plan, and research opt-out.

* ``diagnoses.payer_restricted`` (with who recorded it and when): the patient paid out
  of pocket and asked that the item not be disclosed to their health plan (45 CFR
  164.522(a)(1)(vi)). Reads for PAYMENT leave it out.
* The aggregate functions of migration 0009 take ``for_research``: when true, patients
  whose latest RESEARCH consent is REVOKED are not counted.

Revision ID: 0022
Revises: 0021
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

OPTED_OUT = (
    "coalesce((SELECT c.status = 'REVOKED' FROM phigate.consents c"
    " WHERE c.patient_id = {patient} AND c.consent_type = 'RESEARCH'"
    " ORDER BY c.effective_date DESC, c.recorded_at DESC LIMIT 1), false)"
)
COUNTED = f"NOT (for_research AND {OPTED_OUT.format(patient='{patient}')})"

FUNCTIONS = {
    "deid_patients_by_age": (
        "as_of date, for_research boolean DEFAULT false",
        "TABLE(age integer, patients bigint)",
        "SELECT extract(year FROM age(as_of, p.date_of_birth))::integer, count(*)"
        f" FROM phigate.patients p WHERE {COUNTED.format(patient='p.id')} GROUP BY 1",
    ),
    "deid_patients_by_zip3": (
        "for_research boolean DEFAULT false",
        "TABLE(zip3 text, patients bigint)",
        "SELECT left(p.address_postal_code, 3), count(*) FROM phigate.patients p"
        f" WHERE {COUNTED.format(patient='p.id')} GROUP BY 1",
    ),
    "deid_patients_by_diagnosis": (
        "for_research boolean DEFAULT false",
        "TABLE(icd10_code text, patients bigint)",
        "SELECT d.icd10_code, count(DISTINCT d.patient_id) FROM phigate.diagnoses d"
        f" WHERE {COUNTED.format(patient='d.patient_id')} GROUP BY 1",
    ),
    "deid_patients_by_onset_year": (
        "for_research boolean DEFAULT false",
        "TABLE(icd10_code text, onset_year integer, patients bigint)",
        "SELECT d.icd10_code, extract(year FROM d.onset_date)::integer,"
        " count(DISTINCT d.patient_id) FROM phigate.diagnoses d WHERE d.onset_date IS NOT NULL"
        f" AND {COUNTED.format(patient='d.patient_id')} GROUP BY 1, 2",
    ),
}
OLD = {
    "deid_patients_by_age": "date",
    "deid_patients_by_zip3": "",
    "deid_patients_by_diagnosis": "",
    "deid_patients_by_onset_year": "",
}


def upgrade() -> None:
    op.execute("SET LOCAL ROLE phigate_owner")
    op.add_column(
        "diagnoses",
        sa.Column(
            "payer_restricted", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        schema="phigate",
    )
    op.add_column(
        "diagnoses", sa.Column("payer_restricted_by", sa.String(length=100)), schema="phigate"
    )
    op.add_column(
        "diagnoses",
        sa.Column("payer_restricted_at", sa.DateTime(timezone=True)),
        schema="phigate",
    )
    for name, (arguments, returns, body) in FUNCTIONS.items():
        op.execute(f"DROP FUNCTION phigate.{name}({OLD[name]})")
        op.execute(
            f"CREATE FUNCTION phigate.{name}({arguments}) RETURNS {returns}"
            " LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog"
            f" AS $$ {body} $$"
        )
        signature = ", ".join(part.split()[1] for part in arguments.split(", "))
        op.execute(f"REVOKE ALL ON FUNCTION phigate.{name}({signature}) FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION phigate.{name}({signature}) TO phigate_app")
    op.execute("RESET ROLE")


BEFORE = {
    "deid_patients_by_age": (
        "as_of date",
        "TABLE(age integer, patients bigint)",
        "SELECT extract(year FROM age(as_of, date_of_birth))::integer, count(*)"
        " FROM phigate.patients GROUP BY 1",
    ),
    "deid_patients_by_zip3": (
        "",
        "TABLE(zip3 text, patients bigint)",
        "SELECT left(address_postal_code, 3), count(*) FROM phigate.patients GROUP BY 1",
    ),
    "deid_patients_by_diagnosis": (
        "",
        "TABLE(icd10_code text, patients bigint)",
        "SELECT icd10_code, count(DISTINCT patient_id) FROM phigate.diagnoses GROUP BY 1",
    ),
    "deid_patients_by_onset_year": (
        "",
        "TABLE(icd10_code text, onset_year integer, patients bigint)",
        "SELECT icd10_code, extract(year FROM onset_date)::integer, count(DISTINCT patient_id)"
        " FROM phigate.diagnoses WHERE onset_date IS NOT NULL GROUP BY 1, 2",
    ),
}


def downgrade() -> None:
    op.execute("SET LOCAL ROLE phigate_owner")
    for name, (arguments, returns, body) in BEFORE.items():
        signature = ", ".join(part.split()[1] for part in FUNCTIONS[name][0].split(", "))
        op.execute(f"DROP FUNCTION phigate.{name}({signature})")
        op.execute(
            f"CREATE FUNCTION phigate.{name}({arguments}) RETURNS {returns}"
            " LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog"
            f" AS $$ {body} $$"
        )
        op.execute(f"REVOKE ALL ON FUNCTION phigate.{name}({OLD[name]}) FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION phigate.{name}({OLD[name]}) TO phigate_app")
    for column in ("payer_restricted_at", "payer_restricted_by", "payer_restricted"):
        op.drop_column("diagnoses", column, schema="phigate")
    op.execute("RESET ROLE")
