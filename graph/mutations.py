from __future__ import annotations

import base64
import binascii
from typing import Annotated

import strawberry

from domain.baas import document_sha256
from domain.data_classes import DataClass
from domain.errors import FieldViolation, InvalidInput
from domain.permissions import Permission
from graph.directives import classified, classified_arg
from graph.types.baa import (
    Baa,
    BaaCreateInput,
    BaaDocumentCheck,
    BaaDocumentInput,
    BaaPayload,
    BaaSignInput,
    BaaUpdateInput,
    PhiService,
    PhiServiceInput,
    PhiServicePayload,
)
from graph.types.breach import (
    BreachIncident,
    BreachNotification,
    BreachNotificationPayload,
    BreachPayload,
)
from graph.types.breach_inputs import (
    BreachNotificationInput,
    BreachReportInput,
    BreachUpdateInput,
    jurisdiction_counts,
)
from graph.types.care import (
    BreakGlassEpisode,
    BreakGlassReviewInput,
    BreakGlassReviewPayload,
    CareTeamInput,
    CareTeamMembership,
    CareTeamPayload,
)
from graph.types.common import GraphInfo, response_path
from graph.types.patient import (
    Consent,
    ConsentPayload,
    DiagnosisRestrictionPayload,
    Patient,
    PatientDeletePayload,
    PatientPayload,
)
from graph.types.patient_inputs import (
    ConsentRecordInput,
    DiagnosisRestrictionInput,
    LegalHoldInput,
    PatientCreateInput,
    PatientDeleteInput,
    PatientUpdateInput,
)
from resolvers import baas, breaches, care, patients, retention
from resolvers.inputs import parse_id, parse_ids

PUBLIC = DataClass.PUBLIC
COMPLIANCE = DataClass.COMPLIANCE
SECURITY = DataClass.SECURITY


def _signed_document_hash(sign: BaaSignInput) -> str:
    if (sign.document_base64 is None) == (sign.document_sha256 is None):
        raise InvalidInput(
            [FieldViolation("input", "must give exactly one of documentBase64 and documentSha256")]
        )
    if sign.document_sha256 is not None:
        return sign.document_sha256
    try:
        document = base64.b64decode(sign.document_base64 or "", validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput([FieldViolation("input.documentBase64", "must be base64")]) from None
    return document_sha256(document)


def _record_patient(info: GraphInfo, patient_id: object) -> None:
    """A mutation wrote this patient and returns it in its payload: every PHI field
    beneath the mutation (whatever the caller aliased the payload's fields to) is this
    patient's."""
    path = response_path(info)
    info.context.trail.wrote(path, patient_id)  # type: ignore[arg-type]
    info.context.trail.returned(path, [patient_id])  # type: ignore[list-item]


async def _change_hold(info: GraphInfo, input: LegalHoldInput, *, held: bool) -> PatientPayload:
    patient_id = parse_id(input.patient_id, "input.patientId")
    row = await retention.change_legal_hold(
        info.context, patient_id, held=held, reason=input.reason
    )
    info.context.trail.returned(response_path(info), [patient_id])
    return PatientPayload(patient=Patient.from_row(row))


@strawberry.type
class Mutation:
    @classified(
        PUBLIC,
        requires=Permission.RETENTION_MANAGE,
        description="Put a patient's record on legal hold: retention will not delete it,"
        " nor will patientDelete.",
    )
    async def legal_hold_set(
        self, info: GraphInfo, input: Annotated[LegalHoldInput, classified_arg(PUBLIC)]
    ) -> PatientPayload:
        return await _change_hold(info, input, held=True)

    @classified(PUBLIC, requires=Permission.RETENTION_MANAGE, description="Release a legal hold.")
    async def legal_hold_release(
        self, info: GraphInfo, input: Annotated[LegalHoldInput, classified_arg(PUBLIC)]
    ) -> PatientPayload:
        return await _change_hold(info, input, held=False)

    @classified(
        PUBLIC,
        requires=Permission.RETENTION_MANAGE,
        description="Delete a patient's record for good, with its diagnoses, consents and"
        " links; refused while on legal hold. The audit trail keeps that it happened.",
    )
    async def patient_delete(
        self, info: GraphInfo, input: Annotated[PatientDeleteInput, classified_arg(PUBLIC)]
    ) -> PatientDeletePayload:
        patient_id = parse_id(input.id, "input.id")
        await retention.delete_patient(info.context, patient_id, input.reason)
        return PatientDeletePayload(deleted_id=strawberry.ID(str(patient_id)), reason=input.reason)

    @classified(
        PUBLIC,
        requires=Permission.PATIENT_RECORDS_WRITE,
        description="Register a patient, with any known diagnoses.",
    )
    async def patient_create(
        self, info: GraphInfo, input: Annotated[PatientCreateInput, classified_arg(PUBLIC)]
    ) -> PatientPayload:
        row = await patients.create_patient(
            info.context, input.to_values(), [d.to_values() for d in input.diagnoses or ()]
        )
        _record_patient(info, row.id)
        return PatientPayload(patient=Patient.from_row(row))

    @classified(
        PUBLIC,
        requires=Permission.PATIENT_RECORDS_WRITE,
        description="Change a patient's details; only the fields given change.",
    )
    async def patient_update(
        self, info: GraphInfo, input: Annotated[PatientUpdateInput, classified_arg(PUBLIC)]
    ) -> PatientPayload:
        row = await patients.update_patient(
            info.context,
            parse_id(input.id, "input.id"),
            input.to_values(),
            add_diagnoses=[d.to_values() for d in input.add_diagnoses or ()],
            remove_diagnosis_ids=parse_ids(
                input.remove_diagnosis_ids or [], "input.removeDiagnosisIds"
            ),
        )
        _record_patient(info, row.id)
        return PatientPayload(patient=Patient.from_row(row))

    @classified(
        COMPLIANCE,
        requires=Permission.PATIENT_RECORDS_WRITE,
        description="Record a patient's consent decision.",
    )
    async def consent_record(
        self, info: GraphInfo, input: Annotated[ConsentRecordInput, classified_arg(PUBLIC)]
    ) -> ConsentPayload:
        patient_id = parse_id(input.patient_id, "input.patientId")
        row = await patients.record_consent(
            info.context,
            patient_id,
            consent_type=input.consent_type,
            status=input.status,
            effective_date=input.effective_date,
        )
        patient = await patients.patient(info.context, patient_id)
        _record_patient(info, patient_id)
        return ConsentPayload(consent=Consent.from_row(row), patient=Patient.from_row(patient))

    @classified(
        COMPLIANCE,
        requires=Permission.PATIENT_RECORDS_WRITE,
        description="Withhold a diagnosis from the patient's health plan at their request, or"
        " stop: reads for PAYMENT and OPERATIONS leave a withheld diagnosis out.",
    )
    async def diagnosis_payer_restriction(
        self,
        info: GraphInfo,
        input: Annotated[DiagnosisRestrictionInput, classified_arg(PUBLIC)],
    ) -> DiagnosisRestrictionPayload:
        row = await patients.restrict_diagnosis(
            info.context,
            parse_id(input.diagnosis_id, "input.diagnosisId"),
            restricted=input.restricted,
        )
        return DiagnosisRestrictionPayload(
            diagnosis_id=strawberry.ID(str(row.id)),
            patient_id=strawberry.ID(str(row.patient_id)),
            payer_restricted=row.payer_restricted,
        )

    @classified(
        COMPLIANCE,
        requires=Permission.BAA_MANAGE,
        description="Draft a Business Associate Agreement.",
    )
    async def baa_create(
        self, info: GraphInfo, input: Annotated[BaaCreateInput, classified_arg(PUBLIC)]
    ) -> BaaPayload:
        return BaaPayload(baa=Baa.from_row(await baas.create_baa(info.context, input.to_values())))

    @classified(
        COMPLIANCE,
        requires=Permission.BAA_MANAGE,
        description="Change a BAA; every changed field is kept in its history.",
    )
    async def baa_update(
        self, info: GraphInfo, input: Annotated[BaaUpdateInput, classified_arg(PUBLIC)]
    ) -> BaaPayload:
        row = await baas.update_baa(info.context, parse_id(input.id, "input.id"), input.to_values())
        return BaaPayload(baa=Baa.from_row(row))

    @classified(
        COMPLIANCE,
        requires=Permission.BAA_SIGN,
        description="Record the signature of a BAA, which makes it ACTIVE.",
    )
    async def baa_sign(
        self, info: GraphInfo, input: Annotated[BaaSignInput, classified_arg(PUBLIC)]
    ) -> BaaPayload:
        row = await baas.sign_baa(
            info.context,
            parse_id(input.id, "input.id"),
            signed_by=input.signed_by,
            signed_at=input.signed_at,
            document_sha256=_signed_document_hash(input),
        )
        return BaaPayload(baa=Baa.from_row(row))

    @classified(
        COMPLIANCE,
        requires=Permission.BAA_READ,
        description="Hold a presented document against the SHA-256 recorded at signing.",
    )
    async def baa_verify_document(
        self, info: GraphInfo, input: Annotated[BaaDocumentInput, classified_arg(PUBLIC)]
    ) -> BaaDocumentCheck:
        presented = _signed_document_hash(input)  # type: ignore[arg-type]
        signed = await baas.verify_document(info.context, parse_id(input.id, "input.id"), presented)
        return BaaDocumentCheck(
            matches=signed is not None and signed == presented,
            presented_sha256=presented,
            signed_sha256=signed,
        )

    @classified(
        PUBLIC,
        requires=Permission.BAA_MANAGE,
        description="Register a service that handles PHI; phiServices shows whether a BAA"
        " covers it.",
    )
    async def phi_service_register(
        self, info: GraphInfo, input: Annotated[PhiServiceInput, classified_arg(PUBLIC)]
    ) -> PhiServicePayload:
        row = await baas.register_service(
            info.context,
            {
                "name": input.name,
                "vendor_name": input.vendor_name,
                "description": input.description,
                "phi_categories": sorted({c.value for c in input.phi_categories}),
            },
        )
        covered = {
            service.id: cover
            for service, cover in await baas.services_and_cover(info.context, uncovered_only=False)
        }
        return PhiServicePayload(service=PhiService.from_row(row, covered.get(row.id)))

    @classified(
        COMPLIANCE,
        requires=Permission.BREACH_REPORT,
        description="Report a suspected breach; it starts as REPORTED.",
    )
    async def breach_report(
        self, info: GraphInfo, input: Annotated[BreachReportInput, classified_arg(PUBLIC)]
    ) -> BreachPayload:
        row = await breaches.report_breach(
            info.context,
            input.to_values(),
            affected_patient_ids=parse_ids(input.affected_patient_ids, "input.affectedPatientIds"),
            jurisdictions=jurisdiction_counts(input.jurisdictions),
        )
        return BreachPayload(breach=BreachIncident.from_row(row))

    @classified(
        COMPLIANCE,
        requires=Permission.BREACH_MANAGE,
        description="Assess, advance or amend a breach incident.",
    )
    async def breach_update(
        self, info: GraphInfo, input: Annotated[BreachUpdateInput, classified_arg(PUBLIC)]
    ) -> BreachPayload:
        row = await breaches.update_breach(
            info.context,
            parse_id(input.id, "input.id"),
            input.to_values(),
            add_affected_patient_ids=parse_ids(
                input.add_affected_patient_ids, "input.addAffectedPatientIds"
            ),
            jurisdictions=jurisdiction_counts(input.jurisdictions),
        )
        return BreachPayload(breach=BreachIncident.from_row(row))

    @classified(
        COMPLIANCE,
        requires=Permission.BREACH_MANAGE,
        description="Record a notification sent for a confirmed breach.",
    )
    async def breach_notification_record(
        self,
        info: GraphInfo,
        input: Annotated[BreachNotificationInput, classified_arg(PUBLIC)],
    ) -> BreachNotificationPayload:
        breach_id = parse_id(input.breach_id, "input.breachId")
        row = await breaches.record_notification(
            info.context,
            breach_id,
            recipient=input.recipient,
            method=input.method,
            sent_on=input.sent_on,
        )
        breach = await breaches.breach(info.context, breach_id)
        return BreachNotificationPayload(
            notification=BreachNotification.from_row(row), breach=BreachIncident.from_row(breach)
        )

    @classified(
        SECURITY,
        requires=Permission.CARE_TEAM_MANAGE,
        description="Add a workforce member to a patient's care team (or change its end).",
    )
    async def care_team_add(
        self,
        info: GraphInfo,
        input: Annotated[CareTeamInput, classified_arg(PUBLIC)],
    ) -> CareTeamPayload:
        row = await care.add_member(
            info.context,
            patient_id=parse_id(input.patient_id, "input.patientId"),
            user_id=parse_id(input.user_id, "input.userId"),
            ends_at=input.ends_at,
        )
        return CareTeamPayload(membership=CareTeamMembership.from_row(row))

    @classified(
        SECURITY,
        requires=Permission.CARE_TEAM_MANAGE,
        description="End a care relationship at once.",
    )
    async def care_team_remove(
        self,
        info: GraphInfo,
        input: Annotated[CareTeamInput, classified_arg(PUBLIC)],
    ) -> CareTeamPayload:
        await care.remove_member(
            info.context,
            patient_id=parse_id(input.patient_id, "input.patientId"),
            user_id=parse_id(input.user_id, "input.userId"),
        )
        return CareTeamPayload(membership=None)

    @classified(
        COMPLIANCE,
        requires=Permission.BREAK_GLASS_REVIEW,
        description="Record the review of an emergency-access episode.",
    )
    async def break_glass_review(
        self,
        info: GraphInfo,
        input: Annotated[BreakGlassReviewInput, classified_arg(PUBLIC)],
    ) -> BreakGlassReviewPayload:
        row = await care.review_episode(
            info.context, parse_id(input.id, "input.id"), note=input.note
        )
        return BreakGlassReviewPayload(episode=BreakGlassEpisode.from_row(row))
