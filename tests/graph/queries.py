"""Operations shared by the graph tests: what a clinician (TREATMENT) reads and writes.
FINANCIAL fields are billing's, so they are not here."""

PATIENT_FIELDS = """
  id mrn givenName familyName dateOfBirth ssn phone email insuranceMemberId
  retentionClass createdAt updatedAt
  address { line city state postalCode }
  legalHold { active reason setAt }
  diagnoses { id icd10Code description onsetDate }
  consents { consentType status effectiveDate }
"""

CREATE_PATIENT = (
    "mutation Create($input: PatientCreateInput!) { patientCreate(input: $input) { patient { "
    + PATIENT_FIELDS
    + " } } }"
)
UPDATE_PATIENT = (
    "mutation Update($input: PatientUpdateInput!) { patientUpdate(input: $input) { patient { "
    + PATIENT_FIELDS
    + " } } }"
)
GET_PATIENT = "query Get($id: ID!) { patient(id: $id) { " + PATIENT_FIELDS + " } }"


def patient_input(**overrides: object) -> dict[str, object]:
    """An obviously synthetic patient (phigate assigns the MRN: the test callers are
    limited to their care team)."""
    values: dict[str, object] = {
        "givenName": "Alpha",
        "familyName": "Synthetic-Test",
        "dateOfBirth": "1980-02-29",
        "ssn": "987-65-4320",
        "address": {
            "line": "1 Synthetic Way",
            "city": "Testville",
            "state": "MA",
            "postalCode": "02115",
        },
        "phone": "+16175550100",
        "email": "synthetic.test@example.test",
        "insuranceMemberId": "XMP-T0000001",
        "diagnoses": [
            {"icd10Code": "e119", "description": "Synthetic diagnosis", "onsetDate": "2001-06-01"}
        ],
    }
    values.update(overrides)
    return values
