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
    GatewayInstance,
    OAuthClient,
    PersistedOperation,
    RateLimitCounter,
    RefreshToken,
    RowContextKey,
    RowScopeCeiling,
    SigningKey,
    User,
    UserSession,
)
from db.models.patient import Consent, Diagnosis, LegalHoldEvent, Patient

__all__ = [
    "APP_SCHEMA",
    "AUDIT_SCHEMA",
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
    "GatewayInstance",
    "LegalHoldEvent",
    "OAuthClient",
    "Patient",
    "PersistedOperation",
    "PhiService",
    "RateLimitCounter",
    "RefreshToken",
    "RetentionCut",
    "RowContextKey",
    "RowScopeCeiling",
    "SigningKey",
    "User",
    "UserSession",
]
