"""Each distinct list of records indexed once per transaction, not once per field.

A read writes one audit entry per PHI field it returned, each listing the same records
(a 100-patient page read for its given and family names is two entries of the same 100
ids). Every entry's list went into the GIN index that finds a patient's entries for the
accounting of disclosures: measured with pgbench on the trail itself, that index was 41
to 66% of the cost of writing a 100-record read's entries. An entry that repeats an
earlier entry's list in the same transaction, at the same time, is now marked
(``record_ids_repeated``) and left out of the index; the accounting of disclosures
finds it through the entry that is indexed (``db.audit.mentions``). The mark is not part
of the entry's digest: it says where the index holds the entry, not what happened, and a
gateway of the previous build, sealing during a rolling upgrade, must compute the same
digests. Verification checks instead that every marked entry has its indexed one.

Existing entries keep the column's default (false: indexed). The index
is rebuilt as a partial index, which holds a lock that blocks audit writes (and so
audited requests) while it builds: on a large trail, run this revision in a maintenance
window (docs/database.md).

Revision ID: 0025
Revises: 0024
"""

from __future__ import annotations

from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET LOCAL ROLE phigate_audit_owner")
    op.execute(
        "ALTER TABLE audit.events ADD COLUMN record_ids_repeated boolean NOT NULL DEFAULT false"
    )
    op.execute("DROP INDEX audit.ix_events_record_ids")
    op.execute(
        "CREATE INDEX ix_events_record_ids ON audit.events USING gin (record_ids)"
        " WHERE NOT record_ids_repeated"
    )
    # The gateway writes the flag (column privileges, revision 0017).
    op.execute("GRANT INSERT (record_ids_repeated) ON audit.events TO phigate_app")
    op.execute("RESET ROLE")


def downgrade() -> None:
    raise RuntimeError("the tamper-evident audit trail cannot be downgraded")
