from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.conftest import count_rows
from tests.graph.test_patients import create
from tests.graphql_client import GraphQLClient

FIELDS = """id title status affectedCount phiCategories discoveredAt
  riskAssessment { natureAndExtent unauthorizedRecipient acquiredOrViewed mitigation conclusion assessedAt }
  affectedPatients { id address { state } } jurisdictions { jurisdiction affectedCount }
  notifications { recipient method sentOn }"""
REPORT = (
    "mutation($input: BreachReportInput!) { breachReport(input: $input) { breach { "
    + FIELDS
    + " } } }"
)
UPDATE = (
    "mutation($input: BreachUpdateInput!) { breachUpdate(input: $input) { breach { "
    + FIELDS
    + " } } }"
)
NOTIFY = (
    "mutation($input: BreachNotificationInput!) { breachNotificationRecord(input: $input) { breach { "
    + FIELDS
    + " } } }"
)
NOW = datetime.now(UTC)


async def report(gql: GraphQLClient, **overrides: object) -> dict:
    values = {
        "title": "Synthetic incident",
        "discoveredAt": (NOW - timedelta(days=2)).isoformat(),
        "occurredAt": (NOW - timedelta(days=3)).isoformat(),
        "phiCategories": ["IDENTITY"],
    }
    values.update(overrides)
    return (await gql(REPORT, {"input": values})).ok()["breachReport"]["breach"]


async def test_report_links_patients_and_derives_jurisdictions(
    gql: GraphQLClient, clinician: GraphQLClient
) -> None:
    ma = await create(clinician)
    ny = await create(clinician, address={"state": "NY"})
    breach = await report(gql, affectedPatientIds=[ma["id"], ny["id"], ma["id"]])
    assert breach["status"] == "REPORTED"
    assert breach["affectedCount"] == 2
    assert sorted(p["id"] for p in breach["affectedPatients"]) == sorted([ma["id"], ny["id"]])
    assert breach["jurisdictions"] == [
        {"jurisdiction": "MA", "affectedCount": 1},
        {"jurisdiction": "NY", "affectedCount": 1},
    ]


async def test_declared_counts_may_exceed_linked_patients_but_not_the_reverse(
    gql: GraphQLClient, clinician: GraphQLClient
) -> None:
    patient = await create(clinician)
    breach = await report(
        gql,
        affectedPatientIds=[patient["id"]],
        affectedCount=600,
        jurisdictions=[{"jurisdiction": "MA", "affectedCount": 600}],
    )
    assert breach["affectedCount"] == 600
    bad = await gql(
        REPORT,
        {
            "input": {
                "title": "x",
                "discoveredAt": NOW.isoformat(),
                "phiCategories": [],
                "affectedPatientIds": [patient["id"]],
                "affectedCount": 0,
            }
        },
    )
    assert bad.codes == ["BAD_USER_INPUT"]
    over = await gql(
        REPORT,
        {
            "input": {
                "title": "x",
                "discoveredAt": NOW.isoformat(),
                "phiCategories": [],
                "affectedCount": 5,
                "jurisdictions": [{"jurisdiction": "MA", "affectedCount": 6}],
            }
        },
    )
    assert over.codes == ["BAD_USER_INPUT"]


async def test_full_lifecycle_with_risk_assessment_and_notification(gql: GraphQLClient) -> None:
    breach = await report(gql)
    step = await gql(UPDATE, {"input": {"id": breach["id"], "status": "UNDER_ASSESSMENT"}})
    assert step.ok()["breachUpdate"]["breach"]["status"] == "UNDER_ASSESSMENT"

    premature = await gql(UPDATE, {"input": {"id": breach["id"], "status": "CONFIRMED_BREACH"}})
    assert premature.codes == ["BAD_USER_INPUT"]
    assert "risk assessment" in premature.errors[0]["message"]

    half = await gql(
        UPDATE,
        {
            "input": {
                "id": breach["id"],
                "riskAssessment": {
                    "natureAndExtent": "Names only",
                    "conclusion": "BREACH_PRESUMED",
                },
            }
        },
    )
    assert half.codes == ["BAD_USER_INPUT"]  # a conclusion needs all four factors

    risk = {
        "natureAndExtent": "Names only",
        "unauthorizedRecipient": "Another covered entity",
        "acquiredOrViewed": "Not viewed",
        "mitigation": "Returned unopened",
        "conclusion": "BREACH_PRESUMED",
    }
    confirmed = (
        await gql(
            UPDATE,
            {"input": {"id": breach["id"], "riskAssessment": risk, "status": "CONFIRMED_BREACH"}},
        )
    ).ok()["breachUpdate"]["breach"]
    assert confirmed["status"] == "CONFIRMED_BREACH"
    assert confirmed["riskAssessment"]["conclusion"] == "BREACH_PRESUMED"
    assert confirmed["riskAssessment"]["assessedAt"] is not None

    notified = (
        await gql(
            NOTIFY,
            {
                "input": {
                    "breachId": breach["id"],
                    "recipient": "INDIVIDUALS",
                    "method": "FIRST_CLASS_MAIL",
                    "sentOn": NOW.date().isoformat(),
                }
            },
        )
    ).ok()["breachNotificationRecord"]["breach"]
    assert notified["notifications"] == [
        {"recipient": "INDIVIDUALS", "method": "FIRST_CLASS_MAIL", "sentOn": NOW.date().isoformat()}
    ]

    skipped = await gql(UPDATE, {"input": {"id": breach["id"], "status": "CLOSED"}})
    assert skipped.codes == ["ILLEGAL_TRANSITION"]


async def test_ruling_out_needs_a_low_probability_conclusion(gql: GraphQLClient) -> None:
    breach = await report(gql)
    await gql(UPDATE, {"input": {"id": breach["id"], "status": "UNDER_ASSESSMENT"}})
    refused = await gql(UPDATE, {"input": {"id": breach["id"], "status": "NOT_A_BREACH"}})
    assert refused.codes == ["BAD_USER_INPUT"]


async def test_notifications_only_for_confirmed_breaches(
    gql: GraphQLClient, app_engine, admin_engine
) -> None:
    breach = await report(gql)
    refused = await gql(
        NOTIFY,
        {
            "input": {
                "breachId": breach["id"],
                "recipient": "HHS",
                "method": "HHS_PORTAL",
                "sentOn": NOW.date().isoformat(),
            }
        },
    )
    assert refused.codes == ["BAD_USER_INPUT"]
    assert await count_rows(admin_engine, "breach_notifications") == 0


async def test_discovery_cannot_precede_occurrence(gql: GraphQLClient) -> None:
    response = await gql(
        REPORT,
        {
            "input": {
                "title": "x",
                "phiCategories": [],
                "discoveredAt": (NOW - timedelta(days=5)).isoformat(),
                "occurredAt": (NOW - timedelta(days=1)).isoformat(),
            }
        },
    )
    assert response.codes == ["BAD_USER_INPUT"]
    assert response.errors[0]["extensions"]["fields"][0]["field"] == "input.discoveredAt"


async def test_breach_queries(gql: GraphQLClient, seeded: int) -> None:
    everything = (
        await gql("{ breaches { id status affectedCount affectedPatients { id } } }")
    ).ok()["breaches"]
    assert len(everything) == 2
    confirmed = (
        await gql(
            "{ breaches(status: CONFIRMED_BREACH) { id affectedCount affectedPatients { id } } }"
        )
    ).ok()["breaches"]
    assert (
        len(confirmed) == 1
        and len(confirmed[0]["affectedPatients"]) == confirmed[0]["affectedCount"] == 12
    )
    one = (
        await gql("query($id: ID!) { breach(id: $id) { title } }", {"id": confirmed[0]["id"]})
    ).ok()["breach"]
    assert "synthetic" in one["title"]


DEADLINES = """query($id: ID!) { breach(id: $id) {
  lawEnforcementDelayDays notificationRequired
  deadlines { recipient jurisdiction dueOn citation status sentOn daysLeft }
} }"""


async def test_notification_deadlines_follow_discovery_delay_and_notices(
    gql: GraphQLClient,
) -> None:
    discovered = NOW - timedelta(days=70)
    breach = await report(
        gql,
        discoveredAt=discovered.isoformat(),
        occurredAt=(discovered - timedelta(days=1)).isoformat(),
    )
    found = (await gql(DEADLINES, {"id": breach["id"]})).ok()["breach"]
    assert found["notificationRequired"] is True
    by_recipient = {d["recipient"]: d for d in found["deadlines"]}
    individuals = by_recipient["INDIVIDUALS"]
    assert individuals["dueOn"] == (discovered.date() + timedelta(days=60)).isoformat()
    assert (individuals["status"], individuals["daysLeft"]) == ("OVERDUE", -10)
    # Fewer than 500 affected: HHS hears of it in the annual log.
    assert by_recipient["HHS"]["citation"] == "45 CFR 164.408(c)"
    assert "MEDIA" not in by_recipient

    due_now = (await gql("{ breachDeadlines(withinDays: 0) { id } }")).ok()["breachDeadlines"]
    assert breach["id"] in {b["id"] for b in due_now}

    bad = await gql(UPDATE, {"input": {"id": breach["id"], "lawEnforcementDelayDays": 0}})
    assert bad.codes == ["BAD_USER_INPUT"]
    assert bad.errors[0]["extensions"]["fields"][0]["field"] == "input.lawEnforcementDelayDays"

    (await gql(UPDATE, {"input": {"id": breach["id"], "lawEnforcementDelayDays": 30}})).ok()
    delayed = (await gql(DEADLINES, {"id": breach["id"]})).ok()["breach"]
    individuals = {d["recipient"]: d for d in delayed["deadlines"]}["INDIVIDUALS"]
    assert (individuals["status"], individuals["daysLeft"]) == ("PENDING", 20)
    assert delayed["lawEnforcementDelayDays"] == 30


async def test_a_ruled_out_breach_owes_no_notices(gql: GraphQLClient) -> None:
    breach = await report(gql)
    await gql(UPDATE, {"input": {"id": breach["id"], "status": "UNDER_ASSESSMENT"}})
    risk = {
        "natureAndExtent": "Names only",
        "unauthorizedRecipient": "Another covered entity",
        "acquiredOrViewed": "Not viewed",
        "mitigation": "Returned unopened",
        "conclusion": "LOW_PROBABILITY_OF_COMPROMISE",
    }
    (
        await gql(
            UPDATE,
            {"input": {"id": breach["id"], "riskAssessment": risk, "status": "NOT_A_BREACH"}},
        )
    ).ok()
    found = (await gql(DEADLINES, {"id": breach["id"]})).ok()["breach"]
    assert found == {
        "lawEnforcementDelayDays": None,
        "notificationRequired": False,
        "deadlines": [],
    }
    assert (await gql("{ breachDeadlines(withinDays: 400) { id } }")).codes == ["BAD_USER_INPUT"]
