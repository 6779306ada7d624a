"""Hostile input and hostile clients, over real HTTP against `phigate serve`: every
malformed value is a clear client error naming the field, and nothing one caller sends
degrades the service for the others.

One gateway for the module, with short deadlines for slow clients (2 s) and a small
response budget (100 list items) so the limits can be reached cheaply.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from db.embedded import EmbeddedPostgres
from db.engine import create_engine
from domain.patients import MAX_DIAGNOSES
from tests.e2e.served import SECURITY_HEADERS, Served, serve

NUL_OR_SURROGATE = "must not contain NUL characters or unpaired surrogates"


@pytest.fixture(scope="module")
def served(
    postgres: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    with serve(
        postgres,
        tmp_path_factory.mktemp("hostile"),
        PHIGATE_HEADER_TIMEOUT_SECONDS="2",
        PHIGATE_BODY_TIMEOUT_SECONDS="2",
        PHIGATE_MAX_RESULT_ITEMS="100",
    ) as gateway:
        yield gateway


def post(served: Served, role: str, body: bytes | dict[str, Any], **headers: str) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(
        f"{served.base}/graphql",
        content=content,
        headers={**served.callers[role], "Content-Type": "application/json", **headers},
        timeout=30,
    )


def codes(response: httpx.Response) -> set[str]:
    return {error["extensions"]["code"] for error in response.json().get("errors") or []}


def assert_headers(response: httpx.Response) -> None:
    for name in SECURITY_HEADERS:
        assert name in response.headers, name
    assert response.headers["cache-control"] == "no-store"


def sql(served: Served, statement: str, **parameters: Any) -> Any:
    async def run() -> Any:
        engine = create_engine(
            served.postgres.admin_target(served.database), pool_size=1, max_overflow=0
        )
        try:
            async with engine.begin() as connection:
                result = await connection.execute(text(statement), parameters)
                return result.all() if result.returns_rows else None
        finally:
            await engine.dispose()

    return asyncio.run(run())


def reachable_patient(served: Served) -> str:
    """A patient the test clinician created (and so is on the care team of)."""
    response = post(served, "CLINICIAN", {"query": CREATE, "variables": {"input": _patient()}})
    return response.json()["data"]["patientCreate"]["patient"]["id"]


# 1. Dates and times: a sane range, and one bad stored value never nulls a list.

BREACH = """mutation Report($input: BreachReportInput!) {
  breachReport(input: $input) { breach { id discoveredAt } }
}"""


@pytest.mark.parametrize(
    ("discovered_at", "rule"),
    [
        ("0001-01-01T00:00:00Z", "must be between 1900-01-01 and 2199-12-31"),
        ("9999-12-31T23:59:59Z", "must be between 1900-01-01 and 2199-12-31"),
        ("2001-01-01T00:00:00Z", "Breach Notification Rule"),
        ("2150-01-01T00:00:00Z", "must not be in the future"),
    ],
)
def test_a_breach_date_out_of_range_is_refused_naming_the_field(
    served: Served, discovered_at: str, rule: str
) -> None:
    response = post(
        served,
        "COMPLIANCE_OFFICER",
        {
            "query": BREACH,
            "variables": {
                "input": {
                    "title": "Synthetic incident",
                    "discoveredAt": discovered_at,
                    "phiCategories": ["CONTACT"],
                }
            },
        },
    )
    assert response.status_code == 200
    assert codes(response) == {"BAD_USER_INPUT"}, response.text
    message = response.json()["errors"][0]["message"]
    assert "discoveredAt" in message and rule in message
    assert discovered_at not in response.text


def test_a_stored_date_at_the_calendars_edge_does_not_null_the_list(served: Served) -> None:
    """A record written before the range rule (here: written straight to the table)."""
    [(breach_id,)] = sql(
        served,
        "UPDATE phigate.breach_incidents SET discovered_at = '0001-01-01 00:00:00+00'"
        " WHERE id = (SELECT id FROM phigate.breach_incidents ORDER BY created_at LIMIT 1) RETURNING id",
    )
    try:
        response = post(
            served,
            "COMPLIANCE_OFFICER",
            {"query": "{ breaches { id discoveredAt title } }"},
        )
        assert codes(response) == set(), response.text
        listed = {breach["id"]: breach for breach in response.json()["data"]["breaches"]}
        assert listed[str(breach_id)]["discoveredAt"].startswith("0001-01-01")
        one = post(
            served,
            "COMPLIANCE_OFFICER",
            {"query": f'{{ breach(id: "{breach_id}") {{ id discoveredAt }} }}'},
        )
        assert codes(one) == set(), one.text
    finally:
        sql(
            served,
            "UPDATE phigate.breach_incidents SET discovered_at = now() - interval '3 days' WHERE id = :id",
            id=breach_id,
        )


# 2. NUL characters and unpaired surrogates, in every string input.

CREATE = """mutation Create($input: PatientCreateInput!) {
  patientCreate(input: $input) { patient { id } }
}"""


def _patient(**overrides: Any) -> dict[str, Any]:
    return {
        "givenName": "Testy",
        "familyName": "Synthetic",
        "dateOfBirth": "1980-02-03",
        **overrides,
    }


# JSON escapes, so the body itself is plain ASCII: "\u0000" is NUL, "\ud800" a lone
# high surrogate (valid JSON text, not valid Unicode).
NUL = "\\u0000"
SURROGATE = "\\ud800"


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "surrogate"])
@pytest.mark.parametrize(
    ("role", "query", "variables", "field"),
    [
        ("CLINICIAN", CREATE, '{"input": %s}', "$input.email"),
        ("CLINICIAN", CREATE, '{"input": %s}', "$input.givenName"),
        (
            "COMPLIANCE_OFFICER",
            "mutation B($input: BaaCreateInput!) { baaCreate(input: $input) { baa { id } } }",
            '{"input": {"vendorName": "Synthetic Vendor", "services": ["hosting"],'
            ' "phiCategories": ["CONTACT"], "vendorContactEmail": "v@example.test@BAD@"}}',
            "$input.vendorContactEmail",
        ),
        (
            "COMPLIANCE_OFFICER",
            BREACH,
            '{"input": {"title": "Synthetic @BAD@", "discoveredAt": "2026-01-01T00:00:00Z",'
            ' "phiCategories": ["CONTACT"]}}',
            "$input.title",
        ),
        (
            "COMPLIANCE_OFFICER",
            "query A($f: AuditEventFilter) { auditEvents(filter: $f) { edges { node { id } } } }",
            '{"f": {"actorId": "user@BAD@"}}',
            "$f.actorId",
        ),
        (
            "COMPLIANCE_OFFICER",
            "query S($u: String!) { phiAccessSummary(userId: $u) { patientId } }",
            '{"u": "user@BAD@"}',
            "$u",
        ),
    ],
)
def test_nul_and_surrogates_are_bad_input_naming_the_field(
    served: Served, bad: str, role: str, query: str, variables: str, field: str
) -> None:
    if "%s" in variables:
        name = field.split(".")[-1]
        patient = json.dumps(_patient(**{name: "x@BAD@example.test"}))
        variables = variables % patient
    body = (
        '{"query": ' + json.dumps(query) + ', "variables": ' + variables.replace("@BAD@", bad) + "}"
    )
    response = post(served, role, body.encode())
    assert response.status_code == 200
    assert codes(response) == {"BAD_USER_INPUT"}, response.text
    error = response.json()["errors"][0]
    assert field in error["message"] and NUL_OR_SURROGATE in error["message"]
    assert_headers(response)


def test_a_nul_in_a_string_literal_is_bad_input_naming_the_argument(served: Served) -> None:
    query = 'query { phiAccessSummary(userId: "someone\\u0000") { patientId } }'
    response = post(served, "COMPLIANCE_OFFICER", {"query": query})
    assert codes(response) == {"BAD_USER_INPUT"}, response.text
    assert "userId must not contain NUL" in response.json()["errors"][0]["message"]


def test_a_failed_business_statement_is_never_reported_as_an_audit_failure(
    served: Served,
) -> None:
    """Whatever a resolver's statement does to the transaction, the audit is written in a
    usable one: AUDIT_UNAVAILABLE means the trail, and only the trail, failed."""
    response = post(
        served,
        "COMPLIANCE_OFFICER",
        {"query": 'query { phiAccessSummary(userId: "nobody-synthetic", days: 30) { patientId } }'},
    )
    assert codes(response) == set(), response.text


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "surrogate"])
def test_login_with_nul_or_surrogate_is_a_400(served: Served, bad: str) -> None:
    body = '{"username": "demo.clinician' + bad + '", "password": "x", "totp": "000000"}'
    response = httpx.post(
        f"{served.base}/auth/login",
        content=body.encode(),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "'username'" in response.json()["error_description"]
    assert_headers(response)


# 3. Deeply nested JSON.


@pytest.mark.parametrize("depth", [40, 600, 5_000, 100_000])
def test_deeply_nested_json_is_a_400_with_the_request_id(served: Served, depth: int) -> None:
    nested = "[" * depth + "]" * depth
    body = '{"query": "query Q($v: String) { __typename }", "variables": {"v": ' + nested + "}}"
    response = post(served, "CLINICIAN", body.encode())
    assert response.status_code == 400, response.text
    error = response.json()["errors"][0]
    assert "nest" in error["message"]
    assert error["extensions"]["requestId"] == response.headers["x-request-id"]
    assert_headers(response)


def test_every_refusal_before_graphql_is_json_with_the_request_id(served: Served) -> None:
    caller = served.callers["CLINICIAN"]
    for response in (
        httpx.post(
            f"{served.base}/graphql",
            content=b"{not json",
            headers={**caller, "Content-Type": "application/json"},
        ),
        httpx.post(
            f"{served.base}/graphql",
            content=b"x=1",
            headers={**caller, "Content-Type": "text/plain"},
        ),
        httpx.post(
            f"{served.base}/graphql",
            content=b"x" * (2 * 1024 * 1024),
            headers={**caller, "Content-Type": "application/json"},
        ),
    ):
        assert response.status_code in (400, 413, 415), response.status_code
        error = response.json()["errors"][0]
        assert error["extensions"]["requestId"] == response.headers["x-request-id"]
        assert_headers(response)


# 4. Input lists are bounded; lists the cost model cannot size are counted.


def test_an_input_list_over_the_maximum_is_refused(served: Served) -> None:
    patient_id = reachable_patient(served)
    update = """mutation U($input: PatientUpdateInput!) {
      patientUpdate(input: $input) { patient { id } } }"""
    many = [{"icd10Code": "Z00.00"}] * 101
    response = post(
        served,
        "CLINICIAN",
        {"query": update, "variables": {"input": {"id": patient_id, "addDiagnoses": many}}},
    )
    assert codes(response) == {"BAD_USER_INPUT"}, response.text
    assert "$input.addDiagnoses" in response.text and "at most 100 items" in response.text
    ids = ", ".join(f'"{uuid.uuid4()}"' for _ in range(101))
    literal = (
        f'mutation {{ patientUpdate(input: {{id: "{patient_id}", removeDiagnosisIds: [{ids}]}})'
        " { patient { id } } }"
    )
    response = post(served, "CLINICIAN", {"query": literal})
    assert codes(response) == {"BAD_USER_INPUT"}, response.text
    assert "input.removeDiagnosisIds" in response.text


def test_a_patient_holds_a_bounded_number_of_diagnoses_and_reads_stay_in_budget(
    served: Served,
) -> None:
    created = post(
        served,
        "CLINICIAN",
        {
            "query": CREATE,
            "variables": {"input": _patient(diagnoses=[{"icd10Code": "Z00.00"}] * MAX_DIAGNOSES)},
        },
    )
    assert codes(created) == set(), created.text
    patient_id = created.json()["data"]["patientCreate"]["patient"]["id"]
    update = """mutation U($input: PatientUpdateInput!) {
      patientUpdate(input: $input) { patient { id } } }"""
    more = post(
        served,
        "CLINICIAN",
        {
            "query": update,
            "variables": {"input": {"id": patient_id, "addDiagnoses": [{"icd10Code": "Z00.01"}]}},
        },
    )
    assert codes(more) == {"BAD_USER_INPUT"}, more.text
    assert f"more than {MAX_DIAGNOSES} diagnoses" in more.text
    # The list the cost model cannot size: 100 diagnoses and the page's edges pass the
    # response's budget of 100 items, so nothing of it is returned.
    query = "{ patients(first: 20) { edges { node { id diagnoses { icd10Code } } } } }"
    response = post(served, "CLINICIAN", {"query": query})
    assert response.json()["data"] is None
    assert codes(response) == {"LIMIT_EXCEEDED"}, response.text
    assert "result items" in response.text
    events = sql(
        served,
        "SELECT action, outcome, reason FROM audit.events WHERE request_id = :r"
        " AND category = 'SECURITY'",
        r=response.headers["x-request-id"],
    )
    assert [tuple(row) for row in events] == [("QUERY_LIMIT_EXCEEDED", "DENIED", "RESULT ITEMS")]
    small = post(served, "CLINICIAN", {"query": "{ patients(first: 5) { edges { node { id } } } }"})
    assert codes(small) == set()


# 5. Slow clients are cut off.


def _closed_within(
    connection: socket.socket, trickle: list[bytes], seconds: float
) -> tuple[float, bytes]:
    """Sends one piece a second (then nothing once they run out); returns when the
    server closes the connection."""
    started = time.monotonic()
    received = b""
    connection.settimeout(1)
    pieces = iter(trickle)
    while time.monotonic() - started < seconds:
        try:
            chunk = connection.recv(4096)
            if not chunk:
                return time.monotonic() - started, received
            received += chunk
        except ConnectionResetError:
            return time.monotonic() - started, received
        except TimeoutError:
            piece = next(pieces, None)
            if piece is None:
                continue
            try:
                connection.sendall(piece)
            except OSError:
                return time.monotonic() - started, received
    raise AssertionError("the connection was still open")


def test_a_client_trickling_its_headers_is_cut_off(served: Served) -> None:
    port = int(served.base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        elapsed, _ = _closed_within(connection, [b"X-Slow-%d: 1\r\n" % i for i in range(30)], 15)
    assert elapsed < 6


def test_a_client_trickling_its_body_gets_408_and_is_cut_off(served: Served) -> None:
    port = int(served.base.rsplit(":", 1)[1])
    token = served.callers["CLINICIAN"]["Authorization"]
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(
            b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Authorization: " + token.encode() + b"\r\nContent-Length: 200\r\n\r\n{"
        )
        # A byte a second until just before the 2 s deadline, then silence: bytes still
        # arriving as the server closes would turn its close into a reset that can
        # discard the 408 before it is read.
        elapsed, received = _closed_within(connection, [b" "], 15)
    assert elapsed < 6
    assert received.startswith(b"HTTP/1.1 408")
    assert b"x-request-id" in received.lower() and b"content-security-policy" in received.lower()


# 7. An agreement is never signed back into force for a term that has ended.


def test_an_expired_baa_cannot_be_signed_back_to_active(served: Served) -> None:
    yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    created = post(
        served,
        "COMPLIANCE_OFFICER",
        {
            "query": "mutation C($input: BaaCreateInput!) { baaCreate(input: $input) { baa { id } } }",
            "variables": {
                "input": {
                    "vendorName": "Synthetic Lapsed Vendor",
                    "services": ["archiving"],
                    "phiCategories": ["CONTACT"],
                    "effectiveDate": "2020-01-01",
                    "expiryDate": yesterday,
                }
            },
        },
    )
    assert codes(created) == set(), created.text
    baa_id = created.json()["data"]["baaCreate"]["baa"]["id"]
    signed = post(
        served,
        "COMPLIANCE_OFFICER",
        {
            "query": """mutation S($input: BaaSignInput!) {
              baaSign(input: $input) { baa { id status } } }""",
            "variables": {
                "input": {"id": baa_id, "signedBy": "Synthetic Signer", "documentSha256": "a" * 64}
            },
        },
    )
    assert codes(signed) == {"BAD_USER_INPUT"}, signed.text
    assert "expiryDate" in signed.text and "future" in signed.text
    status = post(
        served,
        "COMPLIANCE_OFFICER",
        {"query": f'{{ baa(id: "{baa_id}") {{ status }} }}'},
    )
    assert status.json()["data"]["baa"]["status"] != "ACTIVE"


# 9. A break-glass reason is words, not punctuation.


@pytest.mark.parametrize("reason", ["..........", "aaaaaaaaaaaaaa", "x y z 1 2 3 4 5"])
def test_a_break_glass_reason_must_be_words(served: Served, reason: str) -> None:
    headers = {"X-Purpose-Of-Use": "EMERGENCY", "X-Break-Glass-Reason": reason}
    response = post(
        served,
        "CLINICIAN",
        {"query": "{ patients(first: 1) { edges { node { givenName } } } }"},
        **headers,
    )
    assert "BREAK_GLASS_REASON_REQUIRED" in response.text, response.text
    assert response.json()["data"] is None


def test_a_written_break_glass_reason_is_accepted(served: Served) -> None:
    headers = {
        "X-Purpose-Of-Use": "EMERGENCY",
        "X-Break-Glass-Reason": "Unconscious patient in the emergency department",
    }
    response = post(
        served,
        "CLINICIAN",
        {"query": "{ patients(first: 1) { edges { node { id } } } }"},
        **headers,
    )
    assert "BREAK_GLASS_REASON_REQUIRED" not in response.text, response.text


# Found by the hostile-values property test: a lone surrogate written into the document
# itself (a literal, or a comment) reached the audit trail's document hash and answered
# INTERNAL_ERROR.


@pytest.mark.parametrize(
    "query",
    [
        '{ patient(id: "@BAD@") { id } }',
        "# @BAD@\n{ __typename }",
    ],
    ids=["literal", "comment"],
)
@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "surrogate"])
def test_nul_or_surrogate_in_the_document_text_is_a_400(
    served: Served, query: str, bad: str
) -> None:
    body = '{"query": ' + json.dumps(query).replace("@BAD@", bad) + "}"
    response = post(served, "CLINICIAN", body.encode())
    assert response.status_code == 400, response.text
    error = response.json()["errors"][0]
    assert "'query'" in error["message"] and NUL_OR_SURROGATE in error["message"]
    assert error["extensions"]["requestId"] == response.headers["x-request-id"]
    assert_headers(response)


# 8. No existence oracle on create.


def test_choosing_an_mrn_answers_the_same_whether_it_exists_or_not(served: Served) -> None:
    """DEMO-000001 belongs to a demo patient outside this clinician's care team."""
    answers = []
    for mrn in ("DEMO-000001", "DEMO-999999"):
        response = post(
            served, "CLINICIAN", {"query": CREATE, "variables": {"input": _patient(mrn=mrn)}}
        )
        error = response.json()["errors"][0]
        answers.append((response.status_code, error["message"], error["extensions"]["code"]))
    assert answers[0] == answers[1]
    assert answers[0][2] == "BAD_USER_INPUT" and "input.mrn" in answers[0][1]
    assigned = post(served, "CLINICIAN", {"query": CREATE, "variables": {"input": _patient()}})
    assert codes(assigned) == set(), assigned.text


# Found looking for the rest of the class: uvicorn's httptools protocol bounds neither
# the request line nor the headers, and answers a malformed request in plain text.


def _raw(served: Served, request: bytes) -> bytes:
    port = int(served.base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    return received


def test_headers_past_64_kib_are_refused_with_431(served: Served) -> None:
    filler = b"".join(b"X-Filler-%d: %s\r\n" % (n, b"a" * 1000) for n in range(100))
    received = _raw(served, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + filler + b"\r\n")
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431")
    assert b"content-security-policy" in head.lower() and b"x-request-id" in head.lower()
    assert json.loads(body)["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


def test_a_malformed_request_is_json_with_the_security_headers(served: Served) -> None:
    received = _raw(served, b"NOT HTTP AT ALL\r\n\r\n")
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert b"strict-transport-security" in head.lower() and b"x-request-id" in head.lower()
    error = json.loads(body)["errors"][0]
    assert error["extensions"]["requestId"] in head.decode()


@pytest.mark.parametrize(
    "credentials", ["/w==", "%%%", "YQBiOmM="], ids=["not-utf8", "not-base64", "nul"]
)
def test_unreadable_basic_client_credentials_are_invalid_client_not_an_outage(
    served: Served, credentials: str
) -> None:
    """Found looking for the rest of the class: authlib raised on Basic credentials that
    were not UTF-8, and the token endpoint answered 503 temporarily_unavailable."""
    response = httpx.post(
        f"{served.base}/oauth/token",
        content=b"grant_type=client_credentials",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": f"Basic {credentials}",
        },
    )
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    assert_headers(response)
