"""`phigate compliance evidence`: the pre-deployment checklist's validations, run against
the configured deployment (its settings, its database's catalog and audit chain, and,
with --url, the served gateway over HTTP), one verdict per checklist item, with what
was checked. Items that are infrastructure's (network placement, volume encryption,
database maintenance) are listed as the operator's, with what the operator must show.

Numbering follows the checklist (../shared/seeds, the file starting 001): Critical C1 to
C18 and Important I1 to I12, in its order. The test suite validates each item in depth
(tests/e2e/test_checklist*.py, named after the items); this command is the page an
auditor asks for before go-live, computed from the deployment itself."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from graph.settings import Settings

PASS, FAIL, OPERATOR, NOT_RUN = "PASS", "FAIL", "OPERATOR", "NOT RUN"


@dataclass
class Verdict:
    item: str
    title: str
    status: str = PASS
    checked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def check(self, description: str, ok: bool, problem: str | None = None) -> None:
        """One thing checked; a failed check names what is wrong."""
        self.checked.append(description)
        if not ok:
            self.problems.append(problem or description)
            self.status = FAIL

    def as_dict(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "title": self.title,
            "status": self.status,
            "checked": self.checked,
            "problems": self.problems,
        }


@dataclass
class Deployment:
    settings: Settings
    connection: AsyncConnection
    engine: AsyncEngine
    url: str | None
    ca_file: str | None

    async def one(self, sql: str, **params: Any) -> Any:
        return await self.connection.scalar(text(sql), params)

    async def rows(self, sql: str, **params: Any) -> list[Any]:
        return list((await self.connection.execute(text(sql), params)).all())

    def http(
        self, method: str, path: str, *, body: bytes | None = None, headers: dict | None = None
    ) -> tuple[int, dict[str, str], str]:
        """One request to the served gateway: status, headers (lower-case), body."""
        assert self.url is not None
        context = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else None
        request = urllib.request.Request(  # noqa: S310 (the operator's own gateway URL)
            self.url.rstrip("/") + path, data=body, method=method, headers=headers or {}
        )
        try:
            with urllib.request.urlopen(request, timeout=10, context=context) as response:  # noqa: S310
                status, raw_headers, payload = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, raw_headers, payload = error.code, error.headers, error.read()
        headers_out = {key.lower(): value for key, value in raw_headers.items()}
        return status, headers_out, payload.decode("utf-8", "replace")


Check = Callable[[Deployment, Verdict], Awaitable[None]]
ITEMS: list[tuple[str, str, Check | None, str]] = []


def item(code: str, title: str, operator: str = "") -> Callable[[Check], Check]:
    def register(check: Check) -> Check:
        ITEMS.append((code, title, check, operator))
        return check

    return register


def operator_item(code: str, title: str, responsibility: str) -> None:
    ITEMS.append((code, title, None, responsibility))


APP = "phigate_app"


# --- Critical ---------------------------------------------------------------------------


@item("C1", "Multi-factor authentication for every person")
async def _mfa(d: Deployment, v: Verdict) -> None:
    without = await d.one(
        "SELECT count(*) FROM phigate.users WHERE status = 'ACTIVE'"
        " AND totp_secret_ciphertext IS NULL"
    )
    v.check("active accounts without a TOTP secret: 0", without == 0, f"{without} without TOTP")
    if d.settings.oidc_issuer:
        v.check(
            "external IdP tokens need MFA (PHIGATE_OIDC_REQUIRE_MFA)",
            d.settings.oidc_require_mfa,
            "PHIGATE_OIDC_REQUIRE_MFA is off: IdP tokens without a second factor are accepted",
        )
    # No probe over HTTP: without a real account's password, a refused login proves
    # nothing about the second factor (tests/e2e/test_login.py does it with one).
    v.checked.append("sign-in needs password and TOTP code (tests/e2e/test_login.py)")


@item("C2", "Role-based access on every PHI route and field")
async def _rbac(d: Deployment, v: Verdict) -> None:
    from graph.classification import classify
    from graph.cli.checks import row_scope_problems
    from graph.http.app import load_policy
    from graph.schema import schema

    policy = load_policy(d.settings)
    v.check("the policy loads and validates", True)
    shape = classify(schema._schema)
    unclassified = [
        ".".join(key)
        for table in (shape.fields, shape.arguments, shape.input_fields)
        for key, classification in table.items()
        if classification.data_class is None and not key[0].startswith("__")
    ]
    v.check(
        "every field, argument and input field of the schema is classified",
        not unclassified,
        f"unclassified: {', '.join(unclassified[:5])}",
    )
    problems = await row_scope_problems(d.engine, policy)
    v.check("no role reaches more rows than the database allows", not problems, "; ".join(problems))


@item("C3", "Session timeouts and bounded tokens")
async def _sessions(d: Deployment, v: Verdict) -> None:
    s = d.settings
    v.check(
        f"idle timeout {s.session_idle_minutes:g} min (at most 30)", s.session_idle_minutes <= 30
    )
    v.check(f"absolute session {s.session_max_hours} h (at most 24)", s.session_max_hours <= 24)
    v.check(
        f"access tokens live {s.access_token_ttl_seconds} s (at most 900)",
        s.access_token_ttl_seconds <= 900,
    )


@item(
    "C4",
    "Encryption at rest",
    "the database's volumes, snapshots and backups are encrypted (e.g. RDS with KMS)",
)
async def _at_rest(d: Deployment, v: Verdict) -> None:
    from graph.keys import key_provider

    provider = key_provider(d.settings)
    v.check(
        f"field encryption keys load (KEK versions {sorted(provider.keys)})", bool(provider.keys)
    )
    plaintext = await d.one(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'phigate'"
        " AND table_name = 'patients' AND column_name IN ('ssn', 'insurance_member_id')"
    )
    v.check(
        "SSNs and member ids are stored only sealed (no plaintext column)",
        plaintext == 0,
        "a plaintext identifier column exists",
    )


@item("C5", "TLS for everything in transit")
async def _tls(d: Deployment, v: Verdict) -> None:
    import os

    from db.engine import parse_database_url

    serving_tls = bool(os.environ.get("PHIGATE_TLS_CERT_FILE")) or (
        d.url is not None and d.url.startswith("https://")
    )
    behind_proxy = os.environ.get("PHIGATE_BEHIND_PROXY") == "true"
    v.check(
        "the gateway serves HTTPS, or sits behind a TLS-terminating proxy",
        serving_tls or behind_proxy,
        "TLS is off (PHIGATE_TLS_CERT_FILE, or PHIGATE_BEHIND_PROXY behind a TLS proxy)",
    )
    if d.settings.database_url:
        target = parse_database_url(d.settings.database_url)
        v.check(
            "DATABASE_URL verifies the server (sslmode=verify-full) unless local",
            target.is_local or target.verifies_server,
            "DATABASE_URL reaches a remote server without sslmode=verify-full",
        )
    if d.url and d.url.startswith("https://"):
        _, headers, _ = d.http("GET", "/health")
        v.check(
            "HSTS on every response",
            headers.get("strict-transport-security", "").startswith("max-age="),
            "no Strict-Transport-Security header",
        )


@item("C6", "Secrets never in code or on the image")
async def _secrets(d: Deployment, v: Verdict) -> None:
    s = d.settings
    where = "" if s.is_production else " (required in production; this is development)"
    from_environment = bool(s.master_key or s.kms_wrapped_keks)
    v.check(
        "the key-encryption keys come from the environment, a mounted file or KMS" + where,
        from_environment or not s.is_production,
        "no PHIGATE_MASTER_KEY(_FILE) or PHIGATE_KMS_WRAPPED_KEKS in production",
    )
    v.check(
        "the blind-index key comes from the environment or a mounted file" + where,
        bool(s.blind_index_key) or not s.is_production,
        "no PHIGATE_BLIND_INDEX_KEY(_FILE) in production",
    )
    demo = await d.one("SELECT count(*) FROM phigate.users WHERE demo AND status = 'ACTIVE'")
    v.check(
        f"active demo accounts (their password is public): {demo}" + where,
        demo == 0 or not s.is_production,
        f"{demo} demo account(s) active in production",
    )


@item("C7", "Every PHI access audited, tamper-evident")
async def _audit_chain(d: Deployment, v: Verdict) -> None:
    from db import audit

    report = await audit.verify(d.engine)
    v.check(
        f"the audit hash chain verifies ({report.links} links)",
        report.first_broken is None,
        f"the chain is broken at {report.first_broken}",
    )
    v.check(
        "no entry has waited more than an hour to be sealed",
        report.unsealed_overdue == 0,
        f"{report.unsealed_overdue} entries unsealed for over an hour",
    )
    months = await d.one(
        "SELECT to_regclass('audit.events_'"
        " || to_char((now() AT TIME ZONE 'UTC') + interval '1 month', 'YYYY_MM')) IS NOT NULL"
    )
    v.check(
        "next month's audit partition exists", bool(months), "no audit partition for next month"
    )


@item("C8", "Audit logs retained and unchangeable by the application")
async def _audit_immutable(d: Deployment, v: Verdict) -> None:
    for privilege in ("UPDATE", "DELETE", "TRUNCATE"):
        held = await d.one(
            "SELECT has_table_privilege(:role, 'audit.events', :p)", role=APP, p=privilege
        )
        v.check(f"{APP} may not {privilege} audit entries", not held)
    for table in ("audit.events", "audit.chain"):
        held = await d.one(
            "SELECT has_table_privilege(:role, :t, 'UPDATE') OR has_table_privilege(:role, :t,"
            " 'DELETE') OR has_table_privilege(:role, :t, 'TRUNCATE')",
            role=APP,
            t=table,
        )
        v.check(f"{APP} may not change {table}", not held)
        guards = set(
            await d.connection.scalars(
                text(
                    "SELECT tgname FROM pg_trigger WHERE tgrelid = CAST(:t AS regclass)"
                    " AND NOT tgisinternal AND tgname IN ('append_only', 'no_truncate')"
                ),
                {"t": table},
            )
        )
        v.check(
            f"{table} refuses UPDATE, DELETE and TRUNCATE (append_only, no_truncate triggers)",
            guards == {"append_only", "no_truncate"},
            f"{table} lacks {sorted({'append_only', 'no_truncate'} - guards)}",
        )
    days = d.settings.audit_retention_days
    v.check(f"audit retention {days} days (at least 2190, six years)", days >= 2190)


@item("C9", "No PHI in logs")
async def _logs(d: Deployment, v: Verdict) -> None:
    v.check(
        f"log level {d.settings.log_level} (not DEBUG)",
        d.settings.log_level != "DEBUG",
        "PHIGATE_LOG_LEVEL=DEBUG",
    )
    v.check(
        f"log format {d.settings.log_format}: JSON lines through the key allowlist",
        d.settings.log_format == "json",
        "PHIGATE_LOG_FORMAT is not json",
    )


@item("C10", "Hard deletion of PHI, audited first")
async def _hard_delete(d: Deployment, v: Verdict) -> None:
    soft = await d.rows(
        "SELECT table_name || '.' || column_name FROM information_schema.columns"
        " WHERE table_schema = 'phigate' AND column_name IN ('deleted_at', 'is_deleted')"
    )
    v.check("no soft-delete columns", not soft, f"soft-delete columns: {[r[0] for r in soft]}")
    dangling = await d.rows(
        "SELECT conrelid::regclass::text FROM pg_constraint WHERE contype = 'f'"
        " AND confrelid = 'phigate.patients'::regclass AND confdeltype NOT IN ('c', 'n')"
    )
    v.check(
        "deleting a patient deletes (or unlinks) everything that names them",
        not dangling,
        f"no cascade from patients to {[r[0] for r in dangling]}",
    )


@item("C11", "Data minimization in queries")
async def _minimization(d: Deployment, v: Verdict) -> None:
    from db.patients import PHI_FIELD_COLUMNS
    from domain.data_classes import PhiCategory
    from graph.classification import classify
    from graph.schema import schema

    categories = {category.value for category in PhiCategory}
    phi_fields = {
        ".".join(key)
        for key, classification in classify(schema._schema).fields.items()
        if classification.data_class in categories and key != ("Patient", "diagnoses")
    }
    missing = sorted(phi_fields - set(PHI_FIELD_COLUMNS))
    v.check(
        "every PHI field has its own columns, so reads select only what is asked",
        not missing,
        f"PHI fields read with every column: {missing}",
    )


@item("C12", "Automated retention, legal holds excluded, deletions logged")
async def _retention(d: Deployment, v: Verdict) -> None:
    interval = d.settings.retention_interval_seconds
    v.check(
        f"the gateway sweeps every {interval} s",
        0 < interval <= 86400,
        "PHIGATE_RETENTION_INTERVAL_SECONDS is 0: nothing deletes expired records",
    )
    days = await d.one("SELECT days FROM phigate.retention_policy")
    v.check(
        f"the database's retention period ({days} days) is the configured one",
        days == d.settings.retention_days,
        f"the database sweeps at {days} days, PHIGATE_RETENTION_DAYS is"
        f" {d.settings.retention_days}: run `phigate retention run` as the schema owner",
    )
    definer = await d.one(
        "SELECT prosecdef AND pg_get_userbyid(proowner) = 'phigate_owner' FROM pg_proc"
        " WHERE oid = 'phigate.retention_sweep(integer, integer)'::regprocedure"
    )
    v.check("the sweep is the schema owner's function", bool(definer))


@item("C13", "Authenticated by default")
async def _authenticated(d: Deployment, v: Verdict) -> None:
    if not d.url:
        v.status = NOT_RUN
        v.checked.append("give --url to probe the served gateway")
        return
    probes = [
        ("POST", "/graphql", b'{"query": "{ __typename }"}', {"content-type": "application/json"}),
        ("GET", "/graphql?query=%7B__typename%7D", None, {"accept": "application/json"}),
        ("POST", "/auth/logout", None, {}),
    ]
    for method, path, body, headers in probes:
        status, _, payload = d.http(method, path, body=body, headers=headers)
        v.check(
            f"{method} {path.split('?')[0]} without a token answers 401",
            status == 401 and '"data"' not in payload,
            f"{method} {path} answered {status} without a token",
        )


@item("C14", "Input validation on every request")
async def _input(d: Deployment, v: Verdict) -> None:
    s = d.settings
    v.check(f"query depth limit {s.max_depth} (at most 20)", s.max_depth <= 20)
    v.check(f"query cost limit {s.max_cost} (at most 50000)", s.max_cost <= 50_000)
    v.check(
        f"request body limit {s.max_body_bytes} bytes (at most 10 MiB)",
        s.max_body_bytes <= 10 << 20,
    )
    v.check(
        f"input lists at most {s.max_input_list} items (at most 1000)", s.max_input_list <= 1000
    )
    if d.url:
        status, _, payload = d.http(
            "POST", "/graphql", body=b"{not json", headers={"content-type": "application/json"}
        )
        v.check(
            "a malformed body is refused, without a trace",
            status in (400, 401) and "Traceback" not in payload,
        )


@item("C15", "Rate limits")
async def _rate_limits(d: Deployment, v: Verdict) -> None:
    from limits import parse

    s = d.settings
    for name, value, ceiling in (
        ("PHIGATE_RATE_LIMIT_LOGIN", s.rate_limit_login, 60),
        ("PHIGATE_RATE_LIMIT_TOKEN", s.rate_limit_token, 300),
    ):
        limit = parse(value)
        per_minute = limit.amount * 60 / limit.get_expiry()
        v.check(f"{name} {value} (at most {ceiling} a minute)", per_minute <= ceiling)
    v.check(
        "counters are shared by every gateway (in PostgreSQL)",
        bool(await d.one("SELECT to_regclass('phigate.rate_limits') IS NOT NULL")),
    )


operator_item(
    "C16",
    "Database in a private network",
    "PostgreSQL in private subnets; its security group admits only the gateways and an"
    " administrative bastion, never the internet",
)


@item("C17", "Row-level security on PHI tables")
async def _rls(d: Deployment, v: Verdict) -> None:
    from db.models import PHI_TABLES

    for table in PHI_TABLES:
        secured, owner, policies = (
            await d.rows(
                "SELECT c.relrowsecurity, pg_get_userbyid(c.relowner),"
                " (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid)"
                " FROM pg_class c WHERE c.oid = to_regclass(:table)",
                table=f"phigate.{table}",
            )
            or [(False, None, 0)]
        )[0]
        v.check(
            f"{table}: row-level security on, with policies, owned by the schema owner",
            secured and policies > 0 and owner == "phigate_owner",
            f"{table}: row-level security {'on' if secured else 'OFF'}, {policies} policies,"
            f" owner {owner}",
        )


@item("C18", "Least-privilege database role")
async def _least_privilege(d: Deployment, v: Verdict) -> None:
    attributes = await d.rows(
        "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles"
        " WHERE rolname = :role",
        role=APP,
    )
    superuser, bypass, create_role, create_db = attributes[0]
    v.check(f"{APP} is not a superuser", not superuser)
    v.check(f"{APP} cannot bypass row-level security", not bypass)
    v.check(f"{APP} cannot create roles or databases", not (create_role or create_db))
    owns = await d.one(
        "SELECT count(*) FROM pg_class WHERE relowner = to_regrole(:role)"
        " AND relnamespace IN ('phigate'::regnamespace, 'audit'::regnamespace)",
        role=APP,
    )
    v.check(f"{APP} owns no table", owns == 0, f"{APP} owns {owns} tables")
    current = await d.one("SELECT current_user")
    v.check(f"the gateway connects as {APP}", current == APP, f"DATABASE_URL connects as {current}")


# --- Important --------------------------------------------------------------------------


@item("I1", "Account lockout")
async def _lockout(d: Deployment, v: Verdict) -> None:
    s = d.settings
    v.check(f"lock after {s.lockout_threshold} failures (at most 10)", s.lockout_threshold <= 10)
    v.check(f"locked for {s.lockout_minutes} min (at least 5)", s.lockout_minutes >= 5)


@item("I2", "Administrative actions auditable")
async def _admin_audit(d: Deployment, v: Verdict) -> None:
    for table in ("care_team_changes", "baa_changes"):
        rewrite = await d.one(
            "SELECT has_table_privilege(:role, :t, 'UPDATE')"
            " OR has_table_privilege(:role, :t, 'DELETE')",
            role=APP,
            t=f"phigate.{table}",
        )
        v.check(f"{table} is append-only for {APP}", not rewrite)


@item("I3", "Key rotation", "rotate the key-encryption key on your schedule (e.g. yearly)")
async def _rotation(d: Deployment, v: Verdict) -> None:
    age = await d.one(
        "SELECT extract(day FROM now() - max(created_at)) FROM phigate.signing_keys"
        " WHERE retired_at IS NULL"
    )
    v.check(
        f"the token-signing key is {int(age or 0)} days old (at most 365)",
        age is None or age <= 365,
        "rotate the signing key: `phigate keys rotate-signing`",
    )
    rotations = await d.one(
        "SELECT count(*) FROM audit.events WHERE action IN"
        " ('DATA_KEYS_REWRAPPED', 'SIGNING_KEY_ROTATED')"
    )
    v.checked.append(f"{rotations} rotation(s) on record in the audit trail")


@item("I4", "Certificate validation")
async def _certificates(d: Deployment, v: Verdict) -> None:
    from db.engine import parse_database_url

    for name, raw in (
        ("DATABASE_URL", d.settings.database_url),
        ("PHIGATE_AUDIT_READ_DATABASE_URL", d.settings.audit_read_database_url),
    ):
        if raw:
            target = parse_database_url(raw, name)
            v.check(
                f"{name} verifies the certificate and host name (or is local)",
                target.is_local or target.verifies_server,
            )
    if d.settings.oidc_jwks_url:
        v.check(
            "the IdP's JWKS is fetched over verified HTTPS",
            d.settings.oidc_jwks_url.startswith("https://"),
        )
    v.checked.append(
        "nothing in phigate disables verification (tests/e2e/test_checklist_certificates.py)"
    )


@item("I5", "Correlated, structured logs")
async def _correlation(d: Deployment, v: Verdict) -> None:
    v.check("JSON log lines", d.settings.log_format == "json")
    if d.url:
        _, headers, _ = d.http("GET", "/health", headers={"x-request-id": "evidence-probe-0001"})
        v.check(
            "the request id comes back in X-Request-ID",
            headers.get("x-request-id") == "evidence-probe-0001",
        )


@item("I6", "PHI access review")
async def _review(d: Deployment, v: Verdict) -> None:
    from domain.permissions import Permission
    from graph.http.app import load_policy

    reviewers = [
        role.value
        for role, grant in load_policy(d.settings).roles.items()
        if Permission.AUDIT_READ in grant.permissions
    ]
    v.check(f"roles that review the trail: {', '.join(reviewers)}", bool(reviewers))


@item("I7", "PHI separated from non-PHI data")
async def _separation(d: Deployment, v: Verdict) -> None:
    from db.models import PHI_TABLES
    from db.patients import PATIENT_PHI_COLUMNS

    leaks = await d.rows(
        "SELECT table_schema || '.' || table_name || '.' || column_name"
        " FROM information_schema.columns WHERE table_schema IN ('phigate', 'audit')"
        " AND column_name = ANY(:columns) AND NOT (table_schema = 'phigate'"
        " AND table_name = ANY(:phi))",
        columns=sorted(PATIENT_PHI_COLUMNS - {"mrn"}),
        phi=list(PHI_TABLES),
    )
    v.check(
        "PHI columns exist only in the PHI tables",
        not leaks,
        f"PHI columns outside them: {[r[0] for r in leaks]}",
    )


@item("I8", "Analytics on de-identified data only")
async def _analytics(d: Deployment, v: Verdict) -> None:
    scope = await d.one(
        "SELECT row_scope FROM phigate.row_scope_ceilings WHERE grantee = 'role:ANALYST'"
    )
    v.check(f"analysts reach {scope or 'NONE'} patient rows", scope in (None, "NONE"))


@item("I9", "CORS restricted to listed origins")
async def _cors(d: Deployment, v: Verdict) -> None:
    origins = d.settings.cors_origins
    v.check(
        f"allowed origins: {', '.join(origins) or 'none (CORS off)'}; no wildcard",
        not any("*" in origin for origin in origins),
    )
    if d.url:
        _, headers, _ = d.http(
            "OPTIONS",
            "/graphql",
            headers={
                "origin": "https://evidence-probe.invalid",
                "access-control-request-method": "POST",
            },
        )
        v.check(
            "an unlisted origin gets no CORS grant",
            "access-control-allow-origin" not in headers,
        )


@item("I10", "Errors without internals")
async def _errors(d: Deployment, v: Verdict) -> None:
    v.checked.append(
        "errors are masked by construction (graph/errors.py; tests/e2e/test_no_phi_leaks.py)"
    )
    if d.url:
        status, headers, payload = d.http(
            "POST", "/graphql", body=b'{"query": "{"}', headers={"content-type": "application/json"}
        )
        try:
            shaped = isinstance(json.loads(payload), dict)
        except ValueError:
            shaped = False
        v.check(
            "a refused request answers in JSON, with its request id, without a trace",
            status in (400, 401)
            and shaped
            and "Traceback" not in payload
            and bool(headers.get("x-request-id")),
            f"answered {status} without the error shape",
        )
        v.check("responses say nosniff", headers.get("x-content-type-options") == "nosniff")


operator_item(
    "I11",
    "Database maintenance",
    "autovacuum tuned and monitored, bloat and slow queries watched, backups tested",
)


@item("I12", "Database roles")
async def _roles(d: Deployment, v: Verdict) -> None:
    roles = {
        name: (login, superuser, bypass)
        for name, login, superuser, bypass in await d.rows(
            "SELECT rolname, rolcanlogin, rolsuper, rolbypassrls FROM pg_roles"
            " WHERE rolname IN ('phigate_owner', 'phigate_audit_owner', 'phigate_app')"
        )
    }
    for owner in ("phigate_owner", "phigate_audit_owner"):
        v.check(
            f"{owner} cannot log in and bypasses nothing",
            roles.get(owner) == (False, False, False),
        )
    member = await d.one("SELECT pg_has_role(:role, 'phigate_owner', 'MEMBER')", role=APP)
    v.check(f"{APP} is not a member of the owner role", not member)


async def gather(
    settings: Settings, engine: AsyncEngine, *, url: str | None, ca_file: str | None
) -> list[Verdict]:
    verdicts = []
    async with engine.connect() as connection:
        deployment = Deployment(settings, connection, engine, url, ca_file)
        for code, title, check, responsibility in ITEMS:
            verdict = Verdict(code, title)
            if check is None:
                verdict.status = OPERATOR
                verdict.checked.append(f"operator: {responsibility}")
            else:
                try:
                    await check(deployment, verdict)
                except Exception as exc:  # a check that cannot run is a failure
                    await connection.rollback()
                    verdict.check("the check ran", False, f"could not check ({type(exc).__name__})")
                if responsibility:
                    verdict.checked.append(f"operator: {responsibility}")
            verdicts.append(verdict)
    return verdicts


def render(verdicts: list[Verdict]) -> str:
    lines = [f"phigate compliance evidence, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC", ""]
    for verdict in verdicts:
        lines.append(f"{verdict.item:<4} {verdict.status:<8} {verdict.title}")
        lines.extend(f"              - {problem}" for problem in verdict.problems)
        lines.extend(f"                {checked}" for checked in verdict.checked)
    counts = {
        status: sum(v.status == status for v in verdicts)
        for status in (PASS, FAIL, OPERATOR, NOT_RUN)
    }
    lines += ["", ", ".join(f"{count} {status}" for status, count in counts.items())]
    return "\n".join(lines)


def to_json(verdicts: list[Verdict]) -> str:
    return json.dumps([verdict.as_dict() for verdict in verdicts], indent=2)
