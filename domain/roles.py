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
