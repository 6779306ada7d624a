from __future__ import annotations

from enum import StrEnum


class Purpose(StrEnum):
    """Purposes of use a caller declares per request (``X-Purpose-Of-Use``)."""

    TREATMENT = "TREATMENT"
    PAYMENT = "PAYMENT"
    OPERATIONS = "OPERATIONS"
    COMPLIANCE = "COMPLIANCE"
    RESEARCH = "RESEARCH"
    EMERGENCY = "EMERGENCY"
