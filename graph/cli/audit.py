"""`phigate audit ...`: seal, verify, checkpoint, export, partitions, drop-expired."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from db import audit
from db.engine import DatabaseTarget, create_engine
from domain.audit import MIN_AUDIT_RETENTION_DAYS
from domain.retention import MIN_RETENTION_DAYS
from domain.security_events import Outcome, SecurityEvent
from graph.cli.identity import operator, run_with_context
from graph.settings import Settings
from resolvers.auth import AuthContext, flush_events
from resolvers.tokens import TokenRejected

CHECKPOINT_TYPE = "audit-checkpoint+jwt"


def _engine_run(target: DatabaseTarget, work: Any) -> Any:
    async def main() -> Any:
        engine = create_engine(
            target, pool_size=2, max_overflow=0, application_name="phigate-audit"
        )
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def audit_seal(
    settings: Settings, app: DatabaseTarget, _: DatabaseTarget, args: argparse.Namespace
) -> int:
    sealed = _engine_run(app, audit.seal_all)
    print(json.dumps({"sealed": sealed}))
    return 0


async def _check_checkpoint(ctx: AuthContext, document: dict[str, Any]) -> str | None:
    """None when the checkpoint is genuine and the chain still holds it; else why not."""
    try:
        claims = await ctx.tokens.verify_statement(document["signed"], kind=CHECKPOINT_TYPE)
    except (TokenRejected, KeyError):
        return "the checkpoint's signature does not verify"
    current = await audit.hash_at(ctx.engine, int(claims["count"]))
    if current != claims["head_hash"]:
        return f"the chain no longer matches the checkpoint at link {claims['count']}"
    return None


def audit_verify(
    settings: Settings, app: DatabaseTarget, _: DatabaseTarget, args: argparse.Namespace
) -> int:
    async def verify(ctx: AuthContext) -> dict[str, Any]:
        sealed = 0 if args.no_seal else await audit.seal_all(ctx.engine)
        report = await audit.verify(ctx.engine)
        problems = list(report.problems)
        for row in await audit.stored_checkpoints(ctx.engine):
            problem = await _check_checkpoint(ctx, {"signed": row.signed})
            if problem:
                problems.append(f"stored checkpoint {row.id}: {problem}")
        if args.checkpoint:
            # A one-shot command: nothing else runs on this event loop.
            kept = json.loads(Path(args.checkpoint).read_text())  # noqa: ASYNC240
            problem = await _check_checkpoint(ctx, kept)
            if problem:
                problems.append(f"{args.checkpoint}: {problem}")
        return {
            "ok": report.first_broken is None and not problems,
            "links_verified": report.links,
            "sealed_now": sealed,
            "unsealed": report.unsealed,
            "checkpoints": report.checkpoints,
            "first_broken": report.first_broken,
            "problems": problems,
        }

    outcome = run_with_context(settings, app, verify)
    print(json.dumps(outcome, indent=2))
    if not outcome["ok"]:
        print(
            f"phigate: audit chain broken: {outcome['first_broken'] or outcome['problems'][0]}",
            file=sys.stderr,
        )
        return 1
    return 0


def audit_checkpoint(
    settings: Settings, app: DatabaseTarget, _: DatabaseTarget, args: argparse.Namespace
) -> int:
    async def checkpoint(ctx: AuthContext) -> dict[str, Any]:
        await audit.seal_all(ctx.engine)
        count, head_hash = await audit.head(ctx.engine)
        signed = await ctx.tokens.sign_statement(
            {"count": count, "head_hash": head_hash}, kind=CHECKPOINT_TYPE, now=ctx.now
        )
        await audit.store_checkpoint(ctx.engine, count=count, head_hash=head_hash, signed=signed)
        return {
            "count": count,
            "head_hash": head_hash,
            "signed_at": ctx.now.isoformat(),
            "signed": signed,
        }

    document = run_with_context(settings, app, checkpoint)
    text = json.dumps(document, indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n")
    print(text)
    return 0


def _time(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def audit_export(
    settings: Settings, app: DatabaseTarget, _: DatabaseTarget, args: argparse.Namespace
) -> int:
    async def export(ctx: AuthContext) -> int:
        # A one-shot command: nothing else runs on this event loop.
        out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115, ASYNC230
        fhir = args.format != "jsonl"
        rows = audit.export(
            ctx.engine,
            since=_time(args.since),
            until=_time(args.until),
            actor_id=args.actor,
            record_id=args.patient,
            with_chain=fhir,
        )
        count = 0
        try:
            if fhir:
                count = await _write_fhir(out, rows, ndjson=args.format == "fhir-ndjson",
                                          patient=args.patient)  # fmt: skip
            else:
                async for entry in rows:
                    out.write(json.dumps(entry, default=str, sort_keys=True) + "\n")
                    count += 1
        finally:
            if args.output:
                out.close()
        # The export itself is an access to the trail, and is recorded in it.
        ctx.record(
            SecurityEvent.AUDIT_EXPORTED,
            Outcome.ALLOWED,
            actor_id=operator(),
            actor_kind="SYSTEM",
            reason=f"ENTRIES:{count}",
        )
        await flush_events(ctx)
        return count

    count = run_with_context(settings, app, export)
    print(json.dumps({"exported": count}), file=sys.stderr)
    return 0


def retention_run(
    settings: Settings, _: DatabaseTarget, owner: DatabaseTarget, args: argparse.Namespace
) -> int:
    """`phigate retention run`: delete unheld records past retention. Counts only."""
    from resolvers.retention import RetentionReport, run_retention

    days = settings.retention_days if args.days is None else args.days
    if days < MIN_RETENTION_DAYS:
        print(f"phigate: --days must be at least {MIN_RETENTION_DAYS}", file=sys.stderr)
        return 2
    now = datetime.now(UTC)
    base = {
        "actor_id": operator(),
        "actor_kind": "SYSTEM",
        "request_id": f"cli-retention-{now:%Y%m%dT%H%M%S}",
        "operation_name": "retention run",
    }

    def progress(report: RetentionReport) -> None:
        print(
            json.dumps({"examined": report.examined, "deleted": report.deleted}),
            file=sys.stderr,
            flush=True,
        )

    async def run(engine: Any) -> RetentionReport:
        if not args.dry_run:
            # The period the gateways' scheduled sweeps apply from now on: the same.
            from db.retention import set_policy_days

            async with engine.begin() as connection:
                await set_policy_days(connection, days)
        return await run_retention(
            engine,
            days=days,
            now=now,
            dry_run=args.dry_run,
            audit_base=base,
            batch=args.batch,
            progress=progress,
        )

    report = _engine_run(owner, run)
    print(
        json.dumps(
            {
                "retention_days": days,
                "dry_run": args.dry_run,
                "examined": report.examined,
                "expired": report.expired,
                "deleted": report.deleted,
                "kept_by_class": report.kept_by_class,
            },
            indent=2,
        )
    )
    return 0


def compliance_report(
    settings: Settings, _: DatabaseTarget, owner: DatabaseTarget, args: argparse.Namespace
) -> int:
    """`phigate report`: the compliance report as JSON (counts and ids, never PHI)."""
    from db.unit_of_work import RequestDatabase
    from db.visibility import require_owner
    from resolvers import compliance_report as report

    now = datetime.now(UTC)
    since, until = report.default_period(now)
    since = _time(args.since) or since
    until = _time(args.until) or until

    async def build(engine: Any) -> dict[str, Any]:
        db = RequestDatabase(engine, opening=require_owner)
        try:
            return await report.build(db, since=since, until=until, now=now)
        finally:
            await db.close()

    document = _engine_run(owner, build)
    text = json.dumps(document, indent=2, default=str)
    if args.output:
        Path(args.output).write_text(text + "\n")
    else:
        print(text)
    return 0 if document["audit_chain"]["verified"] else 1


def operations_register(
    settings: Settings, app: DatabaseTarget, _: DatabaseTarget, args: argparse.Namespace
) -> int:
    """Register GraphQL documents (one per file, as the client sends it) by SHA-256,
    after validating each against the schema."""
    from graphql import GraphQLError, parse, validate

    from db import operations as store
    from graph.enforcement.explain import explain
    from graph.execution.persisted import digest
    from graph.http.app import load_policy
    from graph.schema import schema

    documents = []
    for name in args.files:
        try:
            text = Path(name).read_text(encoding="utf-8")
            parsed = parse(text)
        except OSError:
            print(f"phigate: {name} cannot be read", file=sys.stderr)
            return 2
        except GraphQLError as exc:
            print(f"phigate: {name}: {exc.message}", file=sys.stderr)
            return 2
        if errors := validate(schema._schema, parsed):
            print(f"phigate: {name}: {errors[0].message}", file=sys.stderr)
            return 2
        # Who may run it, from the policy in force: a document nobody may run is a
        # mistake (or a policy that needs review), not something to register.
        explained = explain(schema._schema, load_policy(settings), text)
        nobody = [e.operation or "(anonymous)" for e in explained if not e.runnable]
        if nobody:
            print(
                f"phigate: {name}: no role or scope may run {', '.join(nobody)}"
                " (see `phigate policy explain`)",
                file=sys.stderr,
            )
            return 2
        allowed_for = {
            e.operation or "(anonymous)": sorted(
                {f"{v.who} / {v.purpose or '(none)'}" for v in e.verdicts if v.allowed}
                | {
                    f"{v.who} / {v.purpose or '(none)'} (some inputs)"
                    for v in e.verdicts
                    if v.some_inputs
                }
            )
            for e in explained
        }
        documents.append((name, digest(text), text, allowed_for))

    async def register(engine: Any) -> None:
        for _, sha256, text, _ in documents:
            await store.store(engine, sha256, text, source="REGISTERED", registered_by=operator())

    _engine_run(app, register)
    print(
        json.dumps(
            {
                "registered": [
                    {"file": name, "sha256": sha256, "allowed_for": allowed_for}
                    for name, sha256, _, allowed_for in documents
                ]
            },
            indent=2,
        )
    )
    return 0


def operations_list(
    settings: Settings, app: DatabaseTarget, _: DatabaseTarget, args: argparse.Namespace
) -> int:
    from db import operations as store

    print(json.dumps({"operations": _engine_run(app, store.listing)}, indent=2, default=str))
    return 0


async def _write_fhir(out: Any, rows: Any, *, ndjson: bool, patient: str | None) -> int:
    """FHIR AuditEvents (IHE BALP), one per request and patient; for --patient, that
    patient's only (an accounting of disclosures, 164.528)."""
    import socket
    import uuid

    from domain.fhir_audit import audit_events, bundle

    wanted = f"Patient/{uuid.UUID(patient)}" if patient is not None else None
    stored = [row async for row in rows]
    events = [
        event
        for event in audit_events(stored, source=f"phigate@{socket.gethostname()}")
        if wanted is None or event["entity"][0]["what"]["reference"] == wanted
    ]
    if ndjson:
        for event in events:
            out.write(json.dumps(event, sort_keys=True) + "\n")
    else:
        stamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        out.write(json.dumps(bundle(events, timestamp=stamp), indent=2, sort_keys=True) + "\n")
    return len(events)


def audit_partitions(
    settings: Settings, app: DatabaseTarget, _: DatabaseTarget, args: argparse.Namespace
) -> int:
    created = _engine_run(app, lambda engine: audit.ensure_partitions(engine, args.ahead))
    print(json.dumps({"months_created": created, "ahead": args.ahead}))
    return 0


def audit_drop_expired(
    settings: Settings, _: DatabaseTarget, admin: DatabaseTarget, args: argparse.Namespace
) -> int:
    days = settings.audit_retention_days if args.retention_days is None else args.retention_days
    if days < MIN_AUDIT_RETENTION_DAYS:
        print(
            f"phigate: --retention-days must be at least {MIN_AUDIT_RETENTION_DAYS} (six years)",
            file=sys.stderr,
        )
        return 2
    retention = timedelta(days=days)

    async def drop(engine: Any) -> list[dict[str, Any]]:
        months = await audit.expired_months(engine, retention=retention, now=datetime.now(UTC))
        report = []
        for month in months:
            entry = {
                "partition": month.partition,
                "ended": month.ends.isoformat(),
                "entries": month.entries,
            }
            if args.execute:
                await audit.drop_month(engine, month, dropped_by=operator())
                entry["dropped"] = True
            report.append(entry)
        return report

    report = _engine_run(admin, drop)
    print(
        json.dumps(
            {"retention_days": days, "executed": args.execute, "months": report},
            indent=2,
        )
    )
    return 0


def add_parsers(commands: Any, handler: Any) -> None:
    retention = commands.add_parser("retention", help="record retention")
    retention_actions = retention.add_subparsers(
        dest="retention_command", required=True, metavar="ACTION"
    )
    run = retention_actions.add_parser(
        "run",
        help="hard-delete unheld patient records past retention (each batch audited first)",
    )
    run.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    run.add_argument(
        "--days", type=int, default=None, help="default PHIGATE_RETENTION_DAYS, else 2555"
    )
    run.add_argument("--batch", type=int, default=200, help="records per transaction")
    run.set_defaults(handler=handler, action=retention_run)

    report = commands.add_parser(
        "report",
        help="the compliance report as JSON; exit 1 if the audit chain does not verify",
    )
    report.add_argument("--from", dest="since", help="ISO date-time (default: 30 days ago)")
    report.add_argument("--to", dest="until", help="ISO date-time (default: now)")
    report.add_argument("--output", help="file to write (default: standard output)")
    report.set_defaults(handler=handler, action=compliance_report)

    operations = commands.add_parser(
        "operations",
        help="persisted GraphQL operations (PHIGATE_OPERATIONS=strict runs only these)",
    )
    operation_actions = operations.add_subparsers(
        dest="operations_command", required=True, metavar="ACTION"
    )
    register = operation_actions.add_parser(
        "register", help="validate and register .graphql documents by their SHA-256"
    )
    register.add_argument("files", nargs="+", metavar="FILE.graphql")
    register.set_defaults(handler=handler, action=operations_register)
    listed = operation_actions.add_parser("list", help="registered and automatic operations")
    listed.set_defaults(handler=handler, action=operations_list)

    parser = commands.add_parser("audit", help="the tamper-evident audit trail")
    actions = parser.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    seal = actions.add_parser("seal", help="append unsealed entries to the hash chain now")
    seal.set_defaults(handler=handler, action=audit_seal)
    verify = actions.add_parser(
        "verify", help="recompute the chain; exit 1 naming the first broken link"
    )
    verify.add_argument("--checkpoint", help="also hold the chain against this checkpoint file")
    verify.add_argument(
        "--no-seal", action="store_true", help="verify without sealing new entries first"
    )
    verify.set_defaults(handler=handler, action=audit_verify)
    checkpoint = actions.add_parser(
        "checkpoint", help="print (and store) a signed head: entry count + hash"
    )
    checkpoint.add_argument(
        "--output", help="also write the checkpoint to this file (keep it off this database)"
    )
    checkpoint.set_defaults(handler=handler, action=audit_checkpoint)
    export = actions.add_parser(
        "export", help="write entries as JSON lines (the export is itself recorded)"
    )
    export.add_argument("--since", help="ISO date-time, inclusive")
    export.add_argument("--until", help="ISO date-time, exclusive")
    export.add_argument("--actor", help="an actor id")
    export.add_argument("--patient", help="a patient id")
    export.add_argument("--output", help="file to write (default: standard output)")
    export.add_argument(
        "--format",
        choices=("jsonl", "fhir", "fhir-ndjson"),
        default="jsonl",
        help="stored rows as JSON lines (re-hashable against the chain), or FHIR R4"
        " AuditEvents (IHE BALP) as a Bundle or as NDJSON",
    )
    export.set_defaults(handler=handler, action=audit_export)
    partitions = actions.add_parser(
        "partitions", help="create this and the coming months' partitions"
    )
    partitions.add_argument("--ahead", type=int, default=3)
    partitions.set_defaults(handler=handler, action=audit_partitions)
    drop = actions.add_parser(
        "drop-expired",
        help="drop whole monthly partitions past retention (dry run unless --execute)",
    )
    drop.add_argument(
        "--retention-days",
        type=int,
        default=None,
        help="default PHIGATE_AUDIT_RETENTION_DAYS, else 2555 (7 years); at least 2190",
    )
    drop.add_argument("--execute", action="store_true", help="really drop them")
    drop.set_defaults(handler=handler, action=audit_drop_expired)
