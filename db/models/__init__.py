from db.models.audit import AUDIT_SCHEMA, AuditBase, AuditEvent, ChainLink, Checkpoint, RetentionCut
from db.models.baa import Baa, BaaChange, PhiService
from db.models.base import APP_SCHEMA, Base
from db.models.breach import (
    BreachAffectedPatient,
    BreachIncident,
    BreachJurisdiction,
    BreachNotification,
)
from db.models.care import BreakGlassEpisode, CareTeamChange, CareTeamMember
from db.models.identity import (
    ExternalSignOut,
    GatewayInstance,
    OAuthClient,
    PersistedOperation,
    RateLimitCounter,
    RefreshToken,
    RetentionPolicy,
    RowContextKey,
    RowScopeCeiling,
    SigningKey,
    User,
    UserSession,
)
from db.models.patient import Consent, Diagnosis, LegalHoldEvent, Patient

# Tables that hold PHI, or facts about one patient (a consent, a legal hold, being among
# a breach's affected): each is under row-level security keyed by the patient
# (migrations 0003, 0008, 0016). The schema's PHI-classified types live in the first two.
PHI_TABLES = ("patients", "diagnoses", "consents", "breach_affected_patients", "legal_hold_events")
# Tables that name a patient by id only, maintained by administrators and compliance
# (who reach no PHI rows), so not under row-level security; no PHI column in them.
PATIENT_LINKED_TABLES = ("care_team_members", "care_team_changes", "break_glass_episodes")

__all__ = [
    "APP_SCHEMA",
    "AUDIT_SCHEMA",
    "PATIENT_LINKED_TABLES",
    "PHI_TABLES",
    "AuditBase",
    "AuditEvent",
    "Baa",
    "BaaChange",
    "Base",
    "BreachAffectedPatient",
    "BreachIncident",
    "BreachJurisdiction",
    "BreachNotification",
    "BreakGlassEpisode",
    "CareTeamChange",
    "CareTeamMember",
    "ChainLink",
    "Checkpoint",
    "Consent",
    "Diagnosis",
    "ExternalSignOut",
    "GatewayInstance",
    "LegalHoldEvent",
    "OAuthClient",
    "Patient",
    "PersistedOperation",
    "PhiService",
    "RateLimitCounter",
    "RefreshToken",
    "RetentionCut",
    "RetentionPolicy",
    "RowContextKey",
    "RowScopeCeiling",
    "SigningKey",
    "User",
    "UserSession",
]
