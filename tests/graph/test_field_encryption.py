"""Field-level envelope encryption of identifiers: nothing readable at rest, each
ciphertext bound to its row, exact-match lookup by blind index, online key rotation."""

from __future__ import annotations

import base64

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.crypto import Envelope, LocalKeyProvider, generate_key
from db.key_rotation import rewrap_all, stale_counts
from domain.roles import Role
from tests.conftest import MASTER_KEY, AsRole
from tests.graph.queries import CREATE_PATIENT, patient_input
from tests.graphql_client import GraphQLClient

SSN, MEMBER = "900-12-3456", "XMP-CANARY-77"
READ = "query($id: ID!) { patient(id: $id) { id givenName ssn insuranceMemberId } }"


async def register(clinician: GraphQLClient, **overrides: object) -> str:
    created = await clinician(CREATE_PATIENT, {"input": patient_input(**overrides)})
    return created.ok()["patientCreate"]["patient"]["id"]


async def stored(admin_engine: AsyncEngine, patient_id: str) -> str:
    async with admin_engine.connect() as connection:
        return await connection.scalar(
            text("SELECT row_to_json(p)::text FROM phigate.patients p WHERE id = :id"),
            {"id": patient_id},
        )


async def test_identifiers_are_unreadable_at_rest_and_open_for_the_caller(
    clinician: GraphQLClient, admin_engine: AsyncEngine
) -> None:
    patient_id = await register(clinician, ssn=SSN, insuranceMemberId=MEMBER)
    row = await stored(admin_engine, patient_id)
    for plaintext in (SSN, SSN.replace("-", ""), MEMBER):
        assert plaintext not in row
    read = (await clinician(READ, {"id": patient_id})).ok()["patient"]
    assert (read["ssn"], read["insuranceMemberId"]) == (SSN, MEMBER)
    # A diagnosis's free text too.
    async with admin_engine.connect() as connection:
        stored_diagnosis = await connection.scalar(
            text("SELECT row_to_json(d)::text FROM phigate.diagnoses d WHERE patient_id = :id"),
            {"id": patient_id},
        )
    assert "Synthetic diagnosis" not in stored_diagnosis
    chart = await clinician(
        "query($id: ID!) { patient(id: $id) { diagnoses { description } } }", {"id": patient_id}
    )
    assert chart.ok()["patient"]["diagnoses"] == [{"description": "Synthetic diagnosis"}]


async def test_a_ciphertext_moved_or_altered_is_an_error_never_garbage(
    clinician: GraphQLClient, admin_engine: AsyncEngine
) -> None:
    a = await register(clinician, ssn="900-22-1111")
    b = await register(clinician, ssn="900-22-2222")
    async with admin_engine.begin() as connection:
        await connection.execute(
            text(
                "UPDATE phigate.patients SET ssn_sealed ="
                " (SELECT ssn_sealed FROM phigate.patients WHERE id = :a) WHERE id = :b"
            ),
            {"a": a, "b": b},
        )
        # Flip the last byte of a's member id (inside the GCM tag).
        await connection.execute(
            text(
                "UPDATE phigate.patients SET insurance_member_id_sealed = set_byte("
                " insurance_member_id_sealed, length(insurance_member_id_sealed) - 1,"
                " get_byte(insurance_member_id_sealed, length(insurance_member_id_sealed) - 1)"
                " # 1) WHERE id = :a"
            ),
            {"a": a},
        )
    moved = await clinician(READ, {"id": b})
    assert moved.codes == ["DATA_INTEGRITY"]
    assert moved.data["patient"]["ssn"] is None  # nothing else of b is withheld
    assert moved.data["patient"]["givenName"] is not None
    altered = await clinician(READ, {"id": a})
    assert altered.codes == ["DATA_INTEGRITY"]
    assert altered.errors[0]["path"] == ["patient", "insuranceMemberId"]
    assert altered.data["patient"]["ssn"] == "900-22-1111"
    assert "900-22" not in str(moved.errors) + str(altered.errors)


async def test_lookup_by_ssn_or_mrn_through_the_blind_index(
    clinician: GraphQLClient, as_role: AsRole
) -> None:
    patient_id = await register(clinician, ssn="900-33-4444")
    await register(clinician, ssn="900-33-5555")
    find = "query($ssn: String, $mrn: String) { patientsByIdentifier(ssn: $ssn, mrn: $mrn) { id } }"
    by_ssn = (await clinician(find, {"ssn": "900-33-4444"})).ok()["patientsByIdentifier"]
    assert [p["id"] for p in by_ssn] == [patient_id]
    read = "query($id: ID!) { patient(id: $id) { mrn } }"
    mrn = (await clinician(read, {"id": patient_id})).ok()["patient"]["mrn"]
    by_mrn = (await clinician(find, {"mrn": mrn})).ok()["patientsByIdentifier"]
    assert [p["id"] for p in by_mrn] == [patient_id]
    assert (await clinician(find, {"ssn": "900-33-0001"})).ok()["patientsByIdentifier"] == []
    malformed = await clinician(find, {"ssn": "900334444"})
    assert malformed.codes == ["BAD_USER_INPUT"]
    assert malformed.errors[0]["extensions"]["fields"] == [
        {"field": "ssn", "rule": "must have the form NNN-NN-NNNN"}
    ]
    both = await clinician(find, {"ssn": "900-33-4444", "mrn": mrn})
    assert both.codes == ["BAD_USER_INPUT"]
    # Searching by SSN is reading an identifier: an analyst may not.
    analyst = await as_role(Role.ANALYST)
    assert (await analyst(find, {"ssn": "900-33-4444"})).data is None


async def test_rotation_rewraps_every_data_key_online_and_values_still_open(
    clinician: GraphQLClient, admin_engine: AsyncEngine
) -> None:
    """As `phigate keys rotate` runs it: the schema owner's connection."""
    patient_id = await register(clinician, ssn="900-44-1234", insuranceMemberId=MEMBER)
    old = base64.b64decode(MASTER_KEY)
    new = base64.b64decode(generate_key())
    both = Envelope(LocalKeyProvider({1: old, 2: new}))
    before = await stale_counts(admin_engine, 2)
    assert before["patients.ssn_sealed"] >= 1 and before["users.totp_secret_ciphertext"] >= 1
    seen: list[tuple[str, int]] = []
    done = await rewrap_all(
        admin_engine, both, batch=1, progress=lambda name, n: seen.append((name, n))
    )
    assert done == before
    assert ("patients.ssn_sealed", 1) in seen  # batches of one: progress per batch
    assert not any((await stale_counts(admin_engine, 2)).values())
    # Version 1 can now be retired: version 2 alone opens everything.
    only_new = Envelope(LocalKeyProvider({2: new}))
    async with admin_engine.connect() as connection:
        blob = await connection.scalar(
            text("SELECT ssn_sealed FROM phigate.patients WHERE id = :id"), {"id": patient_id}
        )
    aad = f"patients.ssn:{patient_id}".encode()
    assert only_new.decrypt_text(bytes(blob), aad=aad) == "900-44-1234"
    assert only_new.key_version(bytes(blob)) == 2
