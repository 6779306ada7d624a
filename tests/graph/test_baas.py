from __future__ import annotations

import base64
import hashlib
from datetime import UTC, date, datetime, timedelta

from tests.graphql_client import GraphQLClient

BAA_FIELDS = "id vendorName status services phiCategories effectiveDate expiryDate signedBy signedAt documentSha256 history { field oldValue newValue }"
CREATE = (
    "mutation($input: BaaCreateInput!) { baaCreate(input: $input) { baa { " + BAA_FIELDS + " } } }"
)
UPDATE = (
    "mutation($input: BaaUpdateInput!) { baaUpdate(input: $input) { baa { " + BAA_FIELDS + " } } }"
)
SIGN = "mutation($input: BaaSignInput!) { baaSign(input: $input) { baa { " + BAA_FIELDS + " } } }"
TODAY = datetime.now(UTC).date()


async def create_baa(gql: GraphQLClient, **overrides: object) -> dict:
    values = {
        "vendorName": "Example Vendor (synthetic)",
        "services": ["Hosting"],
        "phiCategories": ["CLINICAL", "IDENTITY"],
        "effectiveDate": TODAY.isoformat(),
        "expiryDate": (TODAY + timedelta(days=365)).isoformat(),
    }
    values.update(overrides)
    return (await gql(CREATE, {"input": values})).ok()["baaCreate"]["baa"]


async def test_create_starts_as_draft(gql: GraphQLClient) -> None:
    baa = await create_baa(gql)
    assert baa["status"] == "DRAFT"
    assert baa["phiCategories"] == ["CLINICAL", "IDENTITY"]
    assert baa["history"] == []


async def test_update_records_each_changed_field(gql: GraphQLClient) -> None:
    baa = await create_baa(gql)
    updated = (
        await gql(
            UPDATE,
            {
                "input": {
                    "id": baa["id"],
                    "status": "SENT",
                    "services": ["Hosting", "Backups"],
                    "vendorName": baa["vendorName"],
                }
            },
        )
    ).ok()["baaUpdate"]["baa"]
    assert updated["status"] == "SENT"
    history = {
        entry["field"]: (entry["oldValue"], entry["newValue"]) for entry in updated["history"]
    }
    # The vendor name was sent unchanged, so it is not recorded.
    assert history == {"status": ("DRAFT", "SENT"), "services": ("Hosting", "Hosting, Backups")}


async def test_sign_with_document_records_its_hash_and_activates(gql: GraphQLClient) -> None:
    baa = await create_baa(gql)
    document = b"%PDF-1.7 synthetic signed agreement"
    signed = (
        await gql(
            SIGN,
            {
                "input": {
                    "id": baa["id"],
                    "signedBy": "Demo Signatory",
                    "documentBase64": base64.b64encode(document).decode(),
                }
            },
        )
    ).ok()["baaSign"]["baa"]
    assert signed["status"] == "ACTIVE"
    assert signed["documentSha256"] == hashlib.sha256(document).hexdigest()
    assert signed["signedBy"] == "Demo Signatory"
    assert {entry["field"] for entry in signed["history"]} == {
        "status",
        "signedBy",
        "signedAt",
        "documentSha256",
    }


async def test_sign_needs_exactly_one_document_form_and_a_term(gql: GraphQLClient) -> None:
    baa = await create_baa(gql, effectiveDate=None, expiryDate=None)
    both = await gql(
        SIGN,
        {
            "input": {
                "id": baa["id"],
                "signedBy": "X",
                "documentBase64": "eA==",
                "documentSha256": "0" * 64,
            }
        },
    )
    assert both.codes == ["BAD_USER_INPUT"]
    no_term = await gql(
        SIGN, {"input": {"id": baa["id"], "signedBy": "X", "documentSha256": "a" * 64}}
    )
    assert no_term.codes == ["BAD_USER_INPUT"]
    assert "effective and expiry date" in no_term.errors[0]["message"]
    bad_hash = await gql(
        SIGN, {"input": {"id": baa["id"], "signedBy": "X", "documentSha256": "xyz"}}
    )
    assert bad_hash.errors[0]["extensions"]["fields"][0]["field"] == "input.documentSha256"


async def test_active_only_by_signing_and_illegal_transitions_are_refused(
    gql: GraphQLClient,
) -> None:
    baa = await create_baa(gql)
    direct = await gql(UPDATE, {"input": {"id": baa["id"], "status": "ACTIVE"}})
    assert direct.codes == ["BAD_USER_INPUT"]
    await gql(UPDATE, {"input": {"id": baa["id"], "status": "TERMINATED"}})
    back = await gql(UPDATE, {"input": {"id": baa["id"], "status": "DRAFT"}})
    assert back.codes == ["ILLEGAL_TRANSITION"]
    assert "TERMINATED" in back.errors[0]["message"]


async def test_expiring_baas_lists_active_agreements_in_the_window(gql: GraphQLClient) -> None:
    soon = await create_baa(
        gql, vendorName="Soon (synthetic)", expiryDate=(TODAY + timedelta(days=20)).isoformat()
    )
    later = await create_baa(
        gql, vendorName="Later (synthetic)", expiryDate=(TODAY + timedelta(days=200)).isoformat()
    )
    draft = await create_baa(
        gql, vendorName="Draft (synthetic)", expiryDate=(TODAY + timedelta(days=10)).isoformat()
    )
    for baa in (soon, later):
        await gql(
            SIGN,
            {"input": {"id": baa["id"], "signedBy": "Demo Signatory", "documentSha256": "b" * 64}},
        )
    ids = lambda response: [b["id"] for b in response.ok()["expiringBaas"]]  # noqa: E731
    assert ids(await gql("{ expiringBaas(withinDays: 30) { id } }")) == [soon["id"]]
    assert ids(await gql("{ expiringBaas(withinDays: 365) { id } }")) == [soon["id"], later["id"]]
    assert draft["id"] not in ids(await gql("{ expiringBaas(withinDays: 365) { id } }"))
    bad = await gql("{ expiringBaas(withinDays: -1) { id } }")
    assert bad.codes == ["BAD_USER_INPUT"]


async def test_baas_filter_by_status(gql: GraphQLClient, seeded: int) -> None:
    active = (await gql("{ baas(status: ACTIVE) { vendorName status } }")).ok()["baas"]
    assert active and all(b["status"] == "ACTIVE" for b in active)
    everything = (await gql("{ baas { id } }")).ok()["baas"]
    assert len(everything) == 4


def test_date_helper_is_today() -> None:
    assert isinstance(TODAY, date)


VERIFY = """mutation($input: BaaDocumentInput!) {
  baaVerifyDocument(input: $input) { matches presentedSha256 signedSha256 }
}"""
REGISTER = """mutation($input: PhiServiceInput!) {
  phiServiceRegister(input: $input) { service { id name coveringBaaId } }
}"""
SERVICES = (
    "query($only: Boolean!) { phiServices(uncoveredOnly: $only) { name vendorName coveringBaaId } }"
)
SIGNED = b"Synthetic business associate agreement, signed copy"


async def test_a_presented_document_is_held_against_the_signed_hash(gql: GraphQLClient) -> None:
    baa = await create_baa(gql)
    unsigned = await gql(
        VERIFY, {"input": {"id": baa["id"], "documentBase64": base64.b64encode(SIGNED).decode()}}
    )
    assert unsigned.ok()["baaVerifyDocument"]["matches"] is False
    assert unsigned.ok()["baaVerifyDocument"]["signedSha256"] is None
    (
        await gql(
            SIGN,
            {
                "input": {
                    "id": baa["id"],
                    "signedBy": "Jordan Example (synthetic)",
                    "documentBase64": base64.b64encode(SIGNED).decode(),
                }
            },
        )
    ).ok()
    same = await gql(
        VERIFY, {"input": {"id": baa["id"], "documentSha256": hashlib.sha256(SIGNED).hexdigest()}}
    )
    assert same.ok()["baaVerifyDocument"]["matches"] is True
    altered = await gql(
        VERIFY,
        {"input": {"id": baa["id"], "documentBase64": base64.b64encode(SIGNED + b".").decode()}},
    )
    assert altered.ok()["baaVerifyDocument"]["matches"] is False
    malformed = await gql(VERIFY, {"input": {"id": baa["id"], "documentSha256": "abc"}})
    assert malformed.codes == ["BAD_USER_INPUT"]


async def test_services_handling_phi_without_an_active_baa_are_named(gql: GraphQLClient) -> None:
    vendor = "Example Claims Clearinghouse (synthetic)"
    baa = await create_baa(gql, vendorName=vendor, services=["Claims submission"])
    (
        await gql(
            SIGN,
            {"input": {"id": baa["id"], "signedBy": "Jordan Example", "documentSha256": "a" * 64}},
        )
    ).ok()
    covered = await gql(
        REGISTER,
        {
            "input": {
                "name": "claims submission",
                "vendorName": vendor,
                "phiCategories": ["IDENTITY"],
            }
        },
    )
    assert covered.ok()["phiServiceRegister"]["service"]["coveringBaaId"] == baa["id"]
    for name, service_vendor in (("Remittance advice", vendor), ("Claims submission", "Other Co")):
        (
            await gql(
                REGISTER,
                {
                    "input": {
                        "name": name,
                        "vendorName": service_vendor,
                        "phiCategories": ["FINANCIAL"],
                    }
                },
            )
        ).ok()
    uncovered = (await gql(SERVICES, {"only": True})).ok()["phiServices"]
    assert {(s["name"], s["vendorName"]) for s in uncovered} == {
        ("Remittance advice", vendor),
        ("Claims submission", "Other Co"),
    }
    assert len((await gql(SERVICES, {"only": False})).ok()["phiServices"]) == 3
    duplicate = await gql(
        REGISTER,
        {
            "input": {
                "name": "claims submission",
                "vendorName": vendor,
                "phiCategories": ["IDENTITY"],
            }
        },
    )
    assert duplicate.codes == ["CONFLICT"]
    empty = await gql(
        REGISTER, {"input": {"name": "Fax relay", "vendorName": vendor, "phiCategories": []}}
    )
    assert empty.errors[0]["extensions"]["fields"] == [
        {"field": "input.phiCategories", "rule": "must name at least one category of PHI"}
    ]
