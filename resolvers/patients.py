"""Patients, their diagnoses and consents."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy.engine import Row

from db import care_teams
from db import patients as repo
from db.errors import ConstraintViolation
from domain import patients as rules
from domain.errors import Conflict, NotFound, Violations
from domain.geography import jurisdiction_rule, postal_code_rule
from domain.permissions import RowScope
from domain.purposes import Purpose
from resolvers.context import RequestContext
from resolvers.inputs import Page, decode_cursor, page_size

# Where each column is found in the GraphQL input, for error messages.
INPUT_PATHS = {
    "mrn": "mrn",
    "given_name": "givenName",
    "family_name": "familyName",
    "date_of_birth": "dateOfBirth",
    "ssn": "ssn",
    "address_line": "address.line",
    "address_city": "address.city",
    "address_state": "address.state",
    "address_postal_code": "address.postalCode",
    "phone": "phone",
    "email": "email",
    "insurance_payer": "insurancePayer",
    "insurance_member_id": "insuranceMemberId",
    "retention_class": "retentionClass",
}
REQUIRED = frozenset({"mrn", "given_name", "family_name", "date_of_birth", "retention_class"})
_TEXT_LIMITS = {
    "given_name": 100,
    "family_name": 100,
    "address_line": 200,
    "address_city": 100,
    "insurance_payer": 100,
}
_FORMAT_RULES = {
    "mrn": rules.mrn_rule,
    "ssn": rules.ssn_rule,
    "address_state": jurisdiction_rule,
    "address_postal_code": postal_code_rule,
    "phone": rules.phone_rule,
    "email": rules.email_rule,
    "insurance_member_id": rules.member_id_rule,
}


def _check_patient_values(
    values: Mapping[str, Any], violations: Violations, *, today: date
) -> None:
    for column, value in values.items():
        path = f"input.{INPUT_PATHS[column]}"
        if value is None:
            violations.check(path, "must not be null" if column in REQUIRED else None)
        elif column in _TEXT_LIMITS:
            violations.check(path, rules.text_rule(value, max_length=_TEXT_LIMITS[column]))
        elif column in _FORMAT_RULES:
            violations.check(path, _FORMAT_RULES[column](value))
        elif column == "date_of_birth":
            violations.check(path, rules.birth_date_rule(value, today=today))


def _diagnosis_rows(
    diagnoses: Sequence[Mapping[str, Any]],
    violations: Violations,
    *,
    path: str,
    patient_id: uuid.UUID | None,
    birth_date: date | None,
    ctx: RequestContext,
) -> list[dict[str, Any]]:
    rows = []
    for index, diagnosis in enumerate(diagnoses):
        here = f"{path}[{index}]"
        code = diagnosis["icd10_code"]
        violations.check(f"{here}.icd10Code", rules.icd10_rule(code))
        description = diagnosis.get("description")
        if description is not None:
            violations.check(f"{here}.description", rules.text_rule(description, max_length=500))
        onset = diagnosis.get("onset_date")
        if onset is not None:
            violations.check(
                f"{here}.onsetDate",
                rules.onset_date_rule(onset, today=ctx.today, birth_date=birth_date),
            )
        rows.append(
            {
                "patient_id": patient_id,
                "icd10_code": rules.normalize_icd10(code),
                "description": description,
                "onset_date": onset,
                "recorded_by": ctx.actor_id,
                "recorded_at": ctx.now,
            }
        )
    return rows


async def _break_glass(ctx: RequestContext, patient_id: uuid.UUID) -> bool:
    """Open (or reuse) an emergency episode for a patient outside the care team. True
    when the patient is now reachable this way."""
    access = ctx.access
    user_id = ctx.scope.actor_uuid
    if not (
        ctx.purpose is Purpose.EMERGENCY
        and access.grant.break_glass
        and access.break_glass_reason
        and ctx.scope.row_scope is RowScope.CARE_TEAM
        and user_id is not None
    ):
        return False
    episode = await care_teams.active_episode(
        ctx.db, user_id=user_id, patient_id=patient_id, now=ctx.now
    )
    if episode is None:
        try:
            async with ctx.db.savepoint():
                episode = await care_teams.open_episode(
                    ctx.db,
                    user_id=user_id,
                    patient_id=patient_id,
                    reason=access.break_glass_reason,
                    now=ctx.now,
                    expires_at=ctx.now + access.break_glass_duration,
                )
        except ConstraintViolation:
            return False  # no such patient: answered as not found
    # What this request reads of the patient, it reads through the episode.
    ctx.break_glass_episodes[patient_id] = episode.id
    return True


async def patient(
    ctx: RequestContext,
    patient_id: uuid.UUID,
    *,
    field: str = "id",
    fields: frozenset[str] | None = None,
) -> Row[Any]:
    """A patient the caller may reach (with only the PHI columns of ``fields``, when
    given). Outside the caller's rows answers exactly like an id that does not exist."""
    row = await repo.get_patient(ctx.db, patient_id, ctx.scope, fields)
    if row is None and await _break_glass(ctx, patient_id):
        row = await repo.get_patient(ctx.db, patient_id, ctx.scope, fields)
    if row is None:
        raise NotFound("patient", field)
    return row


async def patient_page(ctx: RequestContext, *, first: int | None, after: str | None) -> Page:
    limit = page_size(first, ctx.page_limits)
    position = decode_cursor(after) if after is not None else None
    rows = await repo.list_patients(
        ctx.db, ctx.scope, limit=limit, after=position, fields=ctx.read_fields
    )
    return Page(rows=rows[:limit], has_next_page=len(rows) > limit)


async def create_patient(
    ctx: RequestContext, values: Mapping[str, Any], diagnoses: Sequence[Mapping[str, Any]]
) -> Row[Any]:
    violations = Violations()
    values = dict(values)
    if values.get("mrn") is None:
        values["mrn"] = rules.assigned_mrn()
    elif ctx.scope.row_scope is not RowScope.ALL:
        violations.check("input.mrn", rules.MRN_CHOICE_RULE)
    _check_patient_values(values, violations, today=ctx.today)
    diagnosis_rows = _diagnosis_rows(
        diagnoses,
        violations,
        path="input.diagnoses",
        patient_id=None,
        birth_date=values.get("date_of_birth"),
        ctx=ctx,
    )
    violations.check("input.diagnoses", rules.diagnosis_count_rule(0, len(diagnosis_rows)))
    violations.raise_if_any()
    if await repo.mrn_in_use(ctx.db, values["mrn"]):
        raise Conflict("input.mrn", "is already assigned to another patient")
    patient_id = uuid.uuid4()
    await repo.insert_patient(
        ctx.db,
        {
            **repo.seal_identifiers(ctx.require_cipher(), patient_id, values),
            "id": patient_id,
            "created_by": ctx.actor_id,
            "created_at": ctx.now,
            "updated_at": ctx.now,
        },
    )
    if ctx.scope.row_scope is RowScope.CARE_TEAM and ctx.scope.actor_uuid is not None:
        # Registering a patient starts a care relationship with them.
        await care_teams.add_member(
            ctx.db,
            patient_id=patient_id,
            user_id=ctx.scope.actor_uuid,
            added_by=ctx.actor_id or "",
            now=ctx.now,
            ends_at=None,
        )
    cipher = ctx.require_cipher()
    await repo.insert_diagnoses(
        ctx.db,
        [repo.seal_diagnosis(cipher, {**d, "patient_id": patient_id}) for d in diagnosis_rows],
    )
    return await patient(ctx, patient_id)


async def update_patient(
    ctx: RequestContext,
    patient_id: uuid.UUID,
    changes: Mapping[str, Any],
    *,
    add_diagnoses: Sequence[Mapping[str, Any]],
    remove_diagnosis_ids: Sequence[uuid.UUID],
) -> Row[Any]:
    current = await patient(ctx, patient_id, field="input.id")
    violations = Violations()
    if "mrn" in changes and ctx.scope.row_scope is not RowScope.ALL:
        violations.check("input.mrn", rules.MRN_CHOICE_RULE)
    _check_patient_values(changes, violations, today=ctx.today)
    birth_date = changes.get("date_of_birth") or current.date_of_birth
    new_diagnoses = _diagnosis_rows(
        add_diagnoses,
        violations,
        path="input.addDiagnoses",
        patient_id=patient_id,
        birth_date=birth_date,
        ctx=ctx,
    )
    violations.raise_if_any()
    if "mrn" in changes and await repo.mrn_in_use(ctx.db, changes["mrn"], other_than=patient_id):
        raise Conflict("input.mrn", "is already assigned to another patient")
    if remove_diagnosis_ids:
        removed = await repo.delete_diagnoses(ctx.db, patient_id, remove_diagnosis_ids)
        if removed != len(set(remove_diagnosis_ids)):
            raise NotFound("diagnosis of this patient", "input.removeDiagnosisIds")
    if new_diagnoses:
        existing = await repo.count_diagnoses(ctx.db, patient_id)
        violations.check(
            "input.addDiagnoses", rules.diagnosis_count_rule(existing, len(new_diagnoses))
        )
        violations.raise_if_any()
    cipher = ctx.require_cipher()
    await repo.insert_diagnoses(ctx.db, [repo.seal_diagnosis(cipher, d) for d in new_diagnoses])
    stored = repo.seal_identifiers(ctx.require_cipher(), patient_id, changes)
    updated = await repo.update_patient(ctx.db, patient_id, stored, now=ctx.now, scope=ctx.scope)
    if updated is None:
        raise NotFound("patient", "input.id")
    return updated


async def record_consent(
    ctx: RequestContext,
    patient_id: uuid.UUID,
    *,
    consent_type: rules.ConsentType,
    status: rules.ConsentStatus,
    effective_date: date,
) -> Row[Any]:
    await patient(ctx, patient_id, field="input.patientId")
    violations = Violations()
    if effective_date > ctx.today:
        violations.check("input.effectiveDate", "must not be in the future")
    violations.raise_if_any()
    return await repo.insert_consent(
        ctx.db,
        {
            "patient_id": patient_id,
            "consent_type": consent_type.value,
            "status": status.value,
            "effective_date": effective_date,
            "recorded_by": ctx.actor_id,
            "recorded_at": ctx.now,
        },
    )


async def find_patients(
    ctx: RequestContext, *, ssn: str | None, mrn: str | None
) -> Sequence[Row[Any]]:
    """Exact match on one identifier, among the patients the caller may reach. SSNs are
    matched through their blind index: nothing is decrypted to search."""
    violations = Violations()
    if (ssn is None) == (mrn is None):
        violations.check("ssn", "give exactly one of ssn or mrn")
    if ssn is not None:
        violations.check("ssn", rules.ssn_rule(ssn))
    if mrn is not None:
        violations.check("mrn", rules.mrn_rule(mrn))
    violations.raise_if_any()
    if ssn is not None:
        return await repo.patients_by_ssn(
            ctx.db, ctx.require_cipher(), ssn, ctx.scope, ctx.read_fields
        )
    assert mrn is not None
    return await repo.patients_by_mrn(ctx.db, mrn, ctx.scope, ctx.read_fields)


async def restrict_diagnosis(
    ctx: RequestContext, diagnosis_id: uuid.UUID, *, restricted: bool
) -> Row[Any]:
    """Record or lift a patient's restriction of a diagnosis from their health plan;
    recorded in the audit trail either way."""
    current = await repo.diagnosis_restricted(ctx.db, diagnosis_id, ctx.scope)
    if current is None:
        raise NotFound("diagnosis", "input.diagnosisId")
    violations = Violations()
    violations.check("input.restricted", rules.restriction_change_rule(current, setting=restricted))
    violations.raise_if_any()
    row = await repo.restrict_diagnosis(
        ctx.db,
        diagnosis_id,
        restricted=restricted,
        actor_id=ctx.actor_id,
        now=ctx.now,
        scope=ctx.scope,
    )
    if row is None:
        raise NotFound("diagnosis", "input.diagnosisId")
    ctx.trail.note(
        "PAYER_RESTRICTION_SET" if restricted else "PAYER_RESTRICTION_LIFTED",
        "Diagnosis.payerRestricted",
        str(row.patient_id),
    )
    return row
