"""Patient, diagnosis and consent queries. Read paths select columns with Core; they
return rows, never ORM objects, so a 1,000-row page costs what the rows cost. Every
query that reaches patients is limited to the caller's PatientScope (and PostgreSQL's
row-level security checks the same again)."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    any_,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    null,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import UUID, aggregate_order_by
from sqlalchemy.engine import Row

from db.audit import CHECKED, read_and_audit
from db.crypto import FieldCipher
from db.engine import Compiled, compile_for_driver
from db.models import Consent, Diagnosis, Patient
from db.unit_of_work import RequestDatabase
from db.visibility import PatientScope
from domain.permissions import RowScope

patients = Patient.__table__

# The columns behind each PHI field (schema coordinate) a response can carry. A read for
# a response selects a PHI column only when the operation asked for a field it backs;
# every other PHI column comes back as NULL, never read from the row (checklist C11:
# minimum necessary in the SQL too, not only in the answer).
PHI_FIELD_COLUMNS: dict[str, tuple[str, ...]] = {
    "Patient.mrn": ("mrn",),
    "Patient.givenName": ("given_name",),
    "Patient.familyName": ("family_name",),
    "Patient.dateOfBirth": ("date_of_birth",),
    "Patient.ssn": ("ssn_sealed",),
    "Patient.insuranceMemberId": ("insurance_member_id_sealed",),
    "Patient.phone": ("phone",),
    "Patient.email": ("email",),
    "Patient.insurancePayer": ("insurance_payer",),
    "Patient.address": ("address_line", "address_city", "address_state", "address_postal_code"),
    "Address.line": ("address_line",),
    "Address.city": ("address_city",),
    "Address.state": ("address_state",),
    "Address.postalCode": ("address_postal_code",),
    "Diagnosis.icd10Code": ("icd10_code",),
    "Diagnosis.onsetDate": ("onset_date",),
    "Diagnosis.recordedAt": ("recorded_at",),
    "Diagnosis.description": ("description_sealed",),
}
PATIENT_PHI_COLUMNS = frozenset(
    {"mrn", "given_name", "family_name", "date_of_birth", "ssn_sealed", "ssn_index"}
    | {"insurance_member_id_sealed", "phone", "email", "insurance_payer"}
    | {"address_line", "address_city", "address_state", "address_postal_code"}
)
DIAGNOSIS_PHI_COLUMNS = frozenset({"icd10_code", "onset_date", "recorded_at", "description_sealed"})


def _minimal(table: Any, phi: frozenset[str], fields: frozenset[str]) -> tuple[Any, ...]:
    wanted = frozenset(
        column for field in fields for column in PHI_FIELD_COLUMNS.get(field, ()) if column in phi
    )
    return _columns(table, phi, wanted)


@functools.lru_cache(maxsize=256)
def _columns(table: Any, phi: frozenset[str], wanted: frozenset[str]) -> tuple[Any, ...]:
    """Keyed by the columns wanted, not the fields asked (a caller varying its selection
    cannot grow it past a bound)."""
    return tuple(
        column if column.name not in phi or column.name in wanted else null().label(column.name)
        for column in table.c
    )


def patient_columns(fields: frozenset[str] | None) -> tuple[Any, ...]:
    """A patient row for a response that asked for these PHI fields (None: every column,
    for the reads a write or a rule needs)."""
    return tuple(patients.c) if fields is None else _minimal(patients, PATIENT_PHI_COLUMNS, fields)


# Columns stored encrypted, and the purpose string of the SSN's blind index.
SEALED = {"ssn": "ssn_sealed", "insurance_member_id": "insurance_member_id_sealed"}
# ... of patients and of diagnoses (``seal_diagnosis``).
SEALED_COLUMNS = frozenset({*SEALED.values(), "description_sealed"})
SSN_INDEX = "patients.ssn"


def seal_identifiers(
    cipher: FieldCipher, patient_id: uuid.UUID, values: Mapping[str, Any]
) -> dict[str, Any]:
    """Values as stored: SSN and member id encrypted for this row, the SSN's blind index
    alongside. Only the columns given are touched (None clears them)."""
    stored = dict(values)
    for column, sealed in SEALED.items():
        if column in stored:
            value = stored.pop(column)
            stored[sealed] = cipher.seal("patients", column, patient_id, value)
            if column == "ssn":
                stored["ssn_index"] = None if value is None else cipher.index(SSN_INDEX, value)
    return stored


def seal_diagnosis(cipher: FieldCipher, values: Mapping[str, Any]) -> dict[str, Any]:
    """A diagnosis as stored: its id fixed here (the AAD names it), text encrypted."""
    stored = dict(values)
    stored.setdefault("id", uuid.uuid4())
    description = stored.pop("description", None)
    stored["description_sealed"] = cipher.seal(
        "diagnoses", "description", stored["id"], description
    )
    return stored


async def patients_by_ssn(
    db: RequestDatabase,
    cipher: FieldCipher,
    ssn: str,
    scope: PatientScope,
    fields: frozenset[str] | None = None,
) -> Sequence[Row[Any]]:
    """Exact match through the blind index: nothing is decrypted to search."""
    return await db.rows(
        select(*patient_columns(fields))
        .where(patients.c.ssn_index == cipher.index(SSN_INDEX, ssn), scope.clause(patients.c.id))
        .order_by(patients.c.created_at, patients.c.id)
    )


async def patients_by_mrn(
    db: RequestDatabase, mrn: str, scope: PatientScope, fields: frozenset[str] | None = None
) -> Sequence[Row[Any]]:
    return await db.rows(
        select(*patient_columns(fields)).where(patients.c.mrn == mrn, scope.clause(patients.c.id))
    )


diagnoses = Diagnosis.__table__
consents = Consent.__table__


async def get_patient(
    db: RequestDatabase,
    patient_id: uuid.UUID,
    scope: PatientScope,
    fields: frozenset[str] | None = None,
) -> Row[Any] | None:
    return await db.first(
        select(*patient_columns(fields)).where(
            patients.c.id == patient_id, scope.clause(patients.c.id)
        )
    )


async def patients_by_ids(
    db: RequestDatabase, ids: Sequence[uuid.UUID], scope: PatientScope
) -> Sequence[Row[Any]]:
    return await db.rows(
        select(patients).where(patients.c.id.in_(ids), scope.clause(patients.c.id))
    )


async def list_patients(
    db: RequestDatabase,
    scope: PatientScope,
    *,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None,
    fields: frozenset[str] | None = None,
) -> Sequence[Row[Any]]:
    """One page in (created_at, id) order: a stable order that carries no PHI into
    cursors. Fetches ``limit + 1`` rows so the caller can tell whether more follow."""
    query = (
        select(*patient_columns(fields))
        .where(scope.clause(patients.c.id))
        .order_by(patients.c.created_at, patients.c.id)
        .limit(limit + 1)
    )
    if after is not None:
        query = query.where(tuple_(patients.c.created_at, patients.c.id) > tuple_(*after))
    return await db.rows(query)


# Compiled planned statements kept, per kind: one per shape of selection (the columns,
# sorted) and row scope; bounded, as the plans they serve are.
PLANNED_STATEMENTS = 2048

# In a read that checks the session in its own statement: the read depends on the
# check's row, so it runs after the check and only if it passed.
_AFTER_CHECK = text(f"{CHECKED}.ok = 1")


# A planned read's column of a patient's diagnoses or consents is named by the relation
# and the columns its records carry, a letter each (a name stays within PostgreSQL's 63
# characters): "diagnoses_icd" is (id, icd10_code, description_sealed).
_RELATED: dict[str, tuple[Any, dict[str, str]]] = {
    "diagnoses": (diagnoses, {
        "id": "i", "icd10_code": "c", "onset_date": "o", "recorded_at": "r",
        "description_sealed": "d", "payer_restricted": "p",
    }),
    "consents": (consents, {
        "id": "i", "consent_type": "t", "status": "s", "effective_date": "e",
        "recorded_at": "r",
    }),
}  # fmt: skip


def related_column(relation: str, columns: tuple[str, ...]) -> str:
    """The column of a planned read that carries each patient's ``relation`` (diagnoses
    or consents): an array of records of ``columns`` (``id`` first), in the order
    ``diagnoses_for`` and ``consents_for`` return them, NULL when there are none. Only
    the columns asked for are read (checklist C11)."""
    _, letters = _RELATED[relation]
    return f"{relation}_" + "".join(letters[column] for column in columns)


def _related_records(name: str) -> tuple[Any, Any]:
    """The table of ``name`` (a ``related_column``) and the aggregate of its records."""
    relation, _, letters = name.partition("_")
    table, letter_of = _RELATED[relation]
    columns = {letter: column for column, letter in letter_of.items()}
    return table, func.array_agg(
        aggregate_order_by(
            # ROW(...), a record even of one column (a parenthesised one is not).
            func.row(*(table.c[columns[letter]] for letter in letters)),
            table.c.recorded_at,
            table.c.id,
        )
    )


def _is_related(name: str) -> bool:
    return name.partition("_")[0] in _RELATED


def _planned_column(name: str) -> Any:
    if not _is_related(name):
        return patients.c[name]
    table, records = _related_records(name)
    # The patient's own row is in the caller's scope already (the page's clause), and
    # row-level security checks each record's patient again in the database.
    return select(records).where(table.c.patient_id == patients.c.id).scalar_subquery().label(name)


@functools.lru_cache(maxsize=PLANNED_STATEMENTS)
def planned_page(
    columns: tuple[str, ...], row_scope: RowScope, after: bool, checked: bool = False
) -> Compiled:
    """``list_patients`` for planned reads: only the columns asked for (and what order and
    cursors need; a patient's diagnoses or consents as ``related_column``), the caller's
    scope with its id as a parameter (``actor``)."""
    wanted = dict.fromkeys((*columns, "created_at", "id"))
    scope = PatientScope(row_scope)
    query = (
        select(*(_planned_column(name) for name in wanted))
        .where(scope.clause(patients.c.id, bindparam("actor", type_=UUID(as_uuid=True))))
        .order_by(patients.c.created_at, patients.c.id)
        .limit(bindparam("limit"))
    )
    if after:
        query = query.where(
            tuple_(patients.c.created_at, patients.c.id)
            > tuple_(bindparam("after_created_at"), bindparam("after_id"))
        )
    if checked:
        query = query.where(_AFTER_CHECK)
    return compile_for_driver(query)


def _related_of_page(name: str) -> str:
    """The page's patients' ``name`` (a ``related_column``) in one grouped aggregate over
    their ids, as ``read_and_audit`` joins it. Against a correlated aggregate per
    patient, in the audited read's statement: 0.77 to 0.86 of the database's CPU per
    100-row read with diagnoses, 0.94 to 0.99 at 10 rows (docs/performance.md)."""
    table, records = _related_records(name)
    aggregate = (
        select(table.c.patient_id, records.label("agg"))
        .where(table.c.patient_id == any_(literal_column("ARRAY(SELECT id FROM page)")))
        .group_by(table.c.patient_id)
    )
    compiled = compile_for_driver(aggregate)
    if compiled.parameters:
        raise ValueError(f"{name}: a page's relation takes no parameters")
    return compiled.sql


@functools.lru_cache(maxsize=PLANNED_STATEMENTS)
def planned_page_audited(
    columns: tuple[str, ...], row_scope: RowScope, after: bool, checked: bool = False
) -> Compiled:
    """``planned_page`` with the audit entries of the page (not the extra row that says
    whether another page follows) written in the same statement; ``checked``: and the
    session checked there too (``read_and_audit``). The patients' diagnoses and consents
    are read for the whole page at once (``_related_of_page``)."""
    related = tuple(name for name in columns if _is_related(name))
    own = tuple(name for name in columns if name not in related)
    page = planned_page(own, row_scope, after, checked)
    sql, names = read_and_audit(
        page.sql,
        page.parameters,
        returned="SELECT id FROM page ORDER BY created_at, id"  # noqa: S608 - no input in it
        f" LIMIT ${page.parameters.index('limit') + 1} - 1",
        checked=checked,
        related=tuple((name, _related_of_page(name)) for name in related),
    )
    return Compiled(sql, names)


@functools.lru_cache(maxsize=PLANNED_STATEMENTS)
def planned_one_audited(
    columns: tuple[str, ...], row_scope: RowScope, checked: bool = False
) -> Compiled:
    one = planned_one(columns, row_scope, checked)
    sql, names = read_and_audit(
        one.sql, one.parameters, returned="SELECT id FROM page", checked=checked
    )
    return Compiled(sql, names)


@functools.lru_cache(maxsize=PLANNED_STATEMENTS)
def planned_one(columns: tuple[str, ...], row_scope: RowScope, checked: bool = False) -> Compiled:
    """``get_patient`` for planned reads."""
    wanted = dict.fromkeys((*columns, "created_at", "id"))
    scope = PatientScope(row_scope)
    query = select(*(_planned_column(name) for name in wanted)).where(
        patients.c.id == bindparam("patient_id", type_=UUID(as_uuid=True)),
        scope.clause(patients.c.id, bindparam("actor", type_=UUID(as_uuid=True))),
    )
    if checked:
        query = query.where(_AFTER_CHECK)
    return compile_for_driver(query)


async def mrn_in_use(db: RequestDatabase, mrn: str, *, other_than: uuid.UUID | None = None) -> bool:
    """Whether a visible patient has this MRN (the unique index catches the rest)."""
    query = select(patients.c.id).where(patients.c.mrn == mrn)
    if other_than is not None:
        query = query.where(patients.c.id != other_than)
    return await db.first(query) is not None


async def insert_patient(db: RequestDatabase, values: Mapping[str, Any]) -> None:
    """No RETURNING: a clinician's new patient becomes visible to them only once they
    are on its care team, which the caller adds next."""
    await db.execute(insert(patients).values(**values))


async def update_patient(
    db: RequestDatabase,
    patient_id: uuid.UUID,
    values: Mapping[str, Any],
    *,
    now: datetime,
    scope: PatientScope,
) -> Row[Any] | None:
    statement = (
        update(patients)
        .where(patients.c.id == patient_id, scope.clause(patients.c.id))
        .values(**values, updated_at=now)
        .returning(patients)
    )
    return await db.first(statement)


async def diagnoses_for(
    db: RequestDatabase,
    patient_ids: Sequence[uuid.UUID],
    *,
    scope: PatientScope,
    fields: frozenset[str] | None = None,
) -> Sequence[Row[Any]]:
    columns = (
        tuple(diagnoses.c) if fields is None else _minimal(diagnoses, DIAGNOSIS_PHI_COLUMNS, fields)
    )
    return await db.rows(
        select(*columns)
        .where(diagnoses.c.patient_id.in_(patient_ids), scope.clause(diagnoses.c.patient_id))
        .order_by(diagnoses.c.patient_id, diagnoses.c.recorded_at, diagnoses.c.id)
    )


async def insert_diagnoses(db: RequestDatabase, rows: Iterable[Mapping[str, Any]]) -> None:
    values = list(rows)
    if values:
        await db.execute(insert(diagnoses), values)


async def count_diagnoses(db: RequestDatabase, patient_id: uuid.UUID) -> int:
    return int(
        await db.scalar(
            select(func.count()).select_from(diagnoses).where(diagnoses.c.patient_id == patient_id)
        )
        or 0
    )


async def delete_diagnoses(
    db: RequestDatabase, patient_id: uuid.UUID, diagnosis_ids: Sequence[uuid.UUID]
) -> int:
    return await db.rowcount(
        delete(diagnoses).where(
            diagnoses.c.patient_id == patient_id, diagnoses.c.id.in_(diagnosis_ids)
        )
    )


async def consents_for(
    db: RequestDatabase, patient_ids: Sequence[uuid.UUID], *, scope: PatientScope
) -> Sequence[Row[Any]]:
    return await db.rows(
        select(consents)
        .where(consents.c.patient_id.in_(patient_ids), scope.clause(consents.c.patient_id))
        .order_by(consents.c.patient_id, consents.c.recorded_at, consents.c.id)
    )


async def insert_consent(db: RequestDatabase, values: Mapping[str, Any]) -> Row[Any]:
    row = await db.first(insert(consents).values(**values).returning(consents))
    assert row is not None
    return row


async def restrict_diagnosis(
    db: RequestDatabase,
    diagnosis_id: uuid.UUID,
    *,
    restricted: bool,
    actor_id: str | None,
    now: datetime,
    scope: PatientScope,
) -> Row[Any] | None:
    """Set or lift a diagnosis's restriction from the health plan, within the caller's
    rows; the updated row, or None when the caller cannot reach it."""
    return await db.first(
        update(diagnoses)
        .where(diagnoses.c.id == diagnosis_id, scope.clause(diagnoses.c.patient_id))
        .values(
            payer_restricted=restricted,
            payer_restricted_by=actor_id,
            payer_restricted_at=now,
        )
        .returning(diagnoses.c.id, diagnoses.c.patient_id, diagnoses.c.payer_restricted)
    )


async def diagnosis_restricted(
    db: RequestDatabase, diagnosis_id: uuid.UUID, scope: PatientScope
) -> bool | None:
    """Whether a reachable diagnosis is withheld from the health plan (None: not found)."""
    return await db.scalar(
        select(diagnoses.c.payer_restricted).where(
            diagnoses.c.id == diagnosis_id, scope.clause(diagnoses.c.patient_id)
        )
    )
