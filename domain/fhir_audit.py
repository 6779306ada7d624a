"""The audit trail as FHIR R4 ``AuditEvent`` resources, following the IHE Basic Audit
Log Patterns (BALP): what health systems feed their SIEM and privacy monitoring.

One resource per request and patient, from the stored entries of that request that
name the patient: the interaction (read, query, create, update, delete), the purpose
of use as an HL7 v3 ActReason code (break-glass marked ``BTG`` as well), the agent
(user or client, role, client address), the gateway as the source, the patient and
the fields touched (schema coordinates, never values), the outcome, and the audit
chain link of every entry it was derived from, so it can be re-verified against the
trail. Pure: rows in, dicts out."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
PURPOSES = {
    "TREATMENT": ("TREAT", "treatment"),
    "PAYMENT": ("HPAYMT", "healthcare payment"),
    "OPERATIONS": ("HOPERAT", "healthcare operations"),
    "RESEARCH": ("HRESCH", "healthcare research"),
    "EMERGENCY": ("ETREAT", "Emergency Treatment"),
    "COMPLIANCE": ("HCOMPL", "health compliance"),
}
BREAK_GLASS = ("BTG", "break the glass")
EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
INTERACTION = "http://hl7.org/fhir/restful-interaction"
# (BALP pattern, restful interaction, AuditEvent.action)
PATTERNS = {
    "READ": ("PatientRead", "read", "R"),
    "QUERY": ("PatientQuery", "search-type", "E"),
    "CREATE": ("PatientCreate", "create", "C"),
    "WRITE": ("PatientUpdate", "update", "U"),
    "DELETE": ("PatientDelete", "delete", "D"),
}
OUTCOMES = {"ALLOWED": "0", "DENIED": "4", "ERROR": "8"}
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
AGENT_TYPE = "http://terminology.hl7.org/CodeSystem/extra-security-role-type"
DICOM = "http://dicom.nema.org/resources/ontology/DCM"
CHAIN_EXTENSION = "https://phigate.example.org/fhir/StructureDefinition/audit-chain-link"
IDENTIFIER_SYSTEMS = "https://phigate.example.org/fhir/NamingSystem"


def _interaction(entries: list[Mapping[str, Any]]) -> str:
    actions = {entry["action"] for entry in entries}
    if "DELETE" in actions:
        return "DELETE"
    if "WRITE" in actions:
        # Writes are recorded by input coordinate: a registration writes PatientCreateInput.
        creating = any(
            str(e.get("field_path", "")).startswith("PatientCreateInput.") for e in entries
        )
        return "CREATE" if creating else "WRITE"
    # Read through a list or a search (more than one patient in the request): a query.
    return "QUERY" if any(len(e.get("record_ids") or ()) > 1 for e in entries) else "READ"


def _instant(value: Any) -> str:
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return text.replace("+00:00", "Z")


def audit_event(
    request_id: str, patient_id: str, entries: list[Mapping[str, Any]], *, source: str
) -> dict[str, Any]:
    """One request's entries about one patient, as a BALP AuditEvent."""
    first = entries[0]
    pattern, interaction, action = PATTERNS[_interaction(entries)]
    outcomes = [entry["outcome"] for entry in entries]
    outcome = "8" if "ERROR" in outcomes else "4" if "DENIED" in outcomes else "0"
    purposes = []
    if first.get("purpose") in PURPOSES:
        code, display = PURPOSES[first["purpose"]]
        purposes.append({"coding": [{"system": ACT_REASON, "code": code, "display": display}]})
    break_glass = any(e.get("break_glass") or e.get("break_glass_episode_id") for e in entries)
    if break_glass:
        code, display = BREAK_GLASS
        purposes.append({"coding": [{"system": ACT_REASON, "code": code, "display": display}]})
    human = first.get("actor_kind") == "USER"
    agent: dict[str, Any] = {
        "type": {
            "coding": [
                {"system": AGENT_TYPE, "code": "humanuser", "display": "human user"}
                if human
                else {"system": DICOM, "code": "110150", "display": "Application"}
            ]
        },
        "who": {
            "identifier": {
                "system": f"{IDENTIFIER_SYSTEMS}/{'user' if human else 'client'}",
                "value": str(first.get("actor_id") or "unknown"),
            }
        },
        "requestor": True,
    }
    if first.get("role"):
        agent["role"] = [{"text": first["role"]}]
    if first.get("client_ip"):
        agent["network"] = {"address": first["client_ip"], "type": "2"}
    if purposes:
        agent["purposeOfUse"] = purposes
    fields = sorted({e["field_path"] for e in entries if e.get("field_path")})
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "meta": {
            "profile": [
                f"https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.{pattern}"
            ]
        },
        "extension": [
            {
                "url": CHAIN_EXTENSION,
                "extension": [
                    {"url": "entry", "valueString": str(e["id"])},
                    *(
                        [{"url": "chainHash", "valueString": e["chain_hash"]}]
                        if e.get("chain_hash")
                        else []
                    ),
                ],
            }
            for e in entries
        ],
        "type": {"system": EVENT_TYPE, "code": "rest", "display": "Restful Operation"},
        "subtype": [{"system": INTERACTION, "code": interaction}],
        "action": action,
        "recorded": _instant(first["occurred_at"]),
        "outcome": outcome,
        "agent": [agent],
        "source": {
            "observer": {"display": source},
            "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}],
        },
        "entity": [
            {
                "what": {"reference": f"Patient/{patient_id}"},
                "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
                "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
                "detail": [{"type": "field", "valueString": field} for field in fields],
            },
            {
                "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
                "role": {"system": OBJECT_ROLE, "code": "24", "display": "Query"},
                "description": "the GraphQL request",
                "detail": [
                    {"type": "requestId", "valueString": request_id},
                    *(
                        [{"type": "documentSha256", "valueString": first["document_hash"]}]
                        if first.get("document_hash")
                        else []
                    ),
                ],
            },
        ],
    }
    if purposes:
        event["purposeOfEvent"] = purposes
    if outcome != "0":
        event["outcomeDesc"] = (
            ", ".join(sorted({e["reason"] for e in entries if e.get("reason")})) or "refused"
        )
    return event


PATIENT_ACTIONS = frozenset({"READ", "WRITE", "DELETE"})


def _about_a_patient(row: Mapping[str, Any]) -> bool:
    """A read, write or deletion of a patient's data: not a note about a BAA, a legal
    hold or an audit review, whose record id is not a patient's."""
    if row.get("category") != "ACCESS" or row.get("action") not in PATIENT_ACTIONS:
        return False
    path = str(row.get("field_path") or "")
    return path == "Patient" or path.split(".")[0] in PATIENT_TYPES


PATIENT_TYPES = frozenset(
    {"Patient", "Address", "Diagnosis", "PatientCreateInput", "PatientUpdateInput"}
    | {"AddressInput", "DiagnosisInput"}
)


def audit_events(rows: Iterable[Mapping[str, Any]], *, source: str) -> Iterator[dict[str, Any]]:
    """PHI-access entries (stored rows, each naming its records) grouped by request,
    caller and patient, as AuditEvents, in the order the requests were recorded. The
    request id is the caller's to choose (when well-formed), so the caller (actor and
    session) is part of the key: two callers' entries never share a resource."""
    groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for row in rows:
        if not _about_a_patient(row):
            continue
        patients = [str(r) for r in row.get("record_ids") or ()] or (
            [str(row["record_id"])] if row.get("record_id") else []
        )
        for patient in patients:
            key = (
                str(row.get("request_id") or row["id"]),
                str(row.get("actor_id")),
                str(row.get("session_id")),
                patient,
            )
            groups.setdefault(key, []).append(row)
    for (request_id, _, _, patient), entries in groups.items():
        yield audit_event(request_id, patient, entries, source=source)


def bundle(events: Iterable[dict[str, Any]], *, timestamp: str) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": timestamp,
        "entry": [{"resource": event} for event in events],
    }
