from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    """Capabilities beyond reading or writing a data class: entry points to record
    kinds, and operations with consequences of their own."""

    PATIENT_RECORDS_READ = "PATIENT_RECORDS_READ"
    PATIENT_RECORDS_WRITE = "PATIENT_RECORDS_WRITE"
    BAA_READ = "BAA_READ"
    BAA_MANAGE = "BAA_MANAGE"
    BAA_SIGN = "BAA_SIGN"
    BREACH_READ = "BREACH_READ"
    BREACH_REPORT = "BREACH_REPORT"
    BREACH_MANAGE = "BREACH_MANAGE"
    CARE_TEAM_MANAGE = "CARE_TEAM_MANAGE"
    BREAK_GLASS_REVIEW = "BREAK_GLASS_REVIEW"
    AUDIT_READ = "AUDIT_READ"
    RETENTION_MANAGE = "RETENTION_MANAGE"  # legal holds, and hard deletion of a record
    ANALYTICS_READ = "ANALYTICS_READ"  # de-identified aggregates only
    USER_MANAGE = "USER_MANAGE"
    INTROSPECT = "INTROSPECT"


class RowScope(StrEnum):
    """Which patients' rows a caller reaches (enforced in resolvers and by RLS)."""

    ALL = "ALL"
    CARE_TEAM = "CARE_TEAM"  # patients with an active care relationship (or break-glass)
    NONE = "NONE"
