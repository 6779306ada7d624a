from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """Workforce classes (HIPAA §164.514(d)(2)): the one list of human roles."""

    CLINICIAN = "CLINICIAN"
    NURSE = "NURSE"
    BILLING = "BILLING"
    COMPLIANCE_OFFICER = "COMPLIANCE_OFFICER"
    AUDITOR = "AUDITOR"
    ANALYST = "ANALYST"
    ADMIN = "ADMIN"


class ServiceScope(StrEnum):
    """What an OAuth2 client may be granted. The authorization policy maps each scope
    to the data classes and purposes it allows."""

    PATIENTS_READ = "patients:read"
    PATIENTS_WRITE = "patients:write"
    BAAS_READ = "baas:read"
    BAAS_WRITE = "baas:write"
    BREACHES_READ = "breaches:read"
    BREACHES_WRITE = "breaches:write"
    AUDIT_READ = "audit:read"
    ANALYTICS_READ = "analytics:read"
