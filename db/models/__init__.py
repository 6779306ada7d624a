from db.models.baa import Baa, BaaChange
from db.models.base import APP_SCHEMA, Base
from db.models.breach import (
    BreachAffectedPatient,
    BreachIncident,
    BreachJurisdiction,
    BreachNotification,
)
from db.models.patient import Consent, Diagnosis, Patient

__all__ = [
    "APP_SCHEMA",
    "Baa",
    "BaaChange",
    "Base",
    "BreachAffectedPatient",
    "BreachIncident",
    "BreachJurisdiction",
    "BreachNotification",
    "Consent",
    "Diagnosis",
    "Patient",
]
