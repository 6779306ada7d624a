from __future__ import annotations

from enum import StrEnum


class PhiCategory(StrEnum):
    """Categories of protected health information a field can hold."""

    IDENTITY = "IDENTITY"  # name, date of birth
    CONTACT = "CONTACT"  # address, phone, email
    IDENTIFIER = "IDENTIFIER"  # SSN, MRN, insurance member id
    CLINICAL = "CLINICAL"  # diagnoses
    FINANCIAL = "FINANCIAL"  # payer and coverage


class DataClass(StrEnum):
    """Classes of data that are not PHI values themselves."""

    PUBLIC = "PUBLIC"  # opaque ids, page info
    COMPLIANCE = "COMPLIANCE"  # consent, retention, legal hold, BAAs, breaches
    AUDIT = "AUDIT"  # the audit trail
    SECURITY = "SECURITY"  # users, sessions, clients
    DEIDENTIFIED = "DEIDENTIFIED"  # Safe Harbor aggregates
