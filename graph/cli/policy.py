"""`phigate policy show | explain | diff | apply-row-scopes`: the minimum-necessary
policy as reviewers read it, applied to operations before anyone runs them, and what a
change to it changes."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from domain.policy import Policy, PolicyError, bundled_policy, parse_policy
from graph.http.app import load_policy
from graph.settings import Settings

COLUMNS = ("who", "purpose", "reads", "writes", "rows", "permissions")


def render_table(policy: Policy) -> str:
    rows = policy.matrix()
    widths = {
        column: max(len(column), *(len(row[column]) for row in rows)) for column in COLUMNS[:-1]
    }
    lines = []
    header = (
        "  ".join(column.upper().ljust(widths[column]) for column in COLUMNS[:-1]) + "  PERMISSIONS"
    )
    lines.append(header)
    previous = None
    for row in rows:
        who = row["who"] if row["who"] != previous else ""
        previous = row["who"]
        cells = [who, *(row[column] for column in COLUMNS[1:-1])]
        line = "  ".join(
            cell.ljust(widths[column]) for cell, column in zip(cells, COLUMNS[:-1], strict=True)
        )
        lines.append(line + "  " + (row["permissions"] if who else ""))
    return "\n".join(line.rstrip() for line in lines)


def policy_show(settings: Settings, args: argparse.Namespace) -> int:
    policy = load_policy(settings)
    if args.format == "json":
        print(json.dumps(policy.matrix(), indent=2))
    else:
        print(render_table(policy))
    return 0


def policy_apply_row_scopes(settings: Settings, args: argparse.Namespace) -> int:
    """Make row-level security's row scopes those of the policy in force (the bundled one
    or PHIGATE_POLICY_FILE). The schema owner's connection only: the gateway's own role
    cannot widen what the database lets it reach."""
    from db.engine import create_engine
    from db.visibility import apply_row_scopes, row_scope_ceilings
    from graph.cli.main import open_database

    policy = load_policy(settings)
    wanted = policy.row_scopes()
    database = open_database(settings)

    async def apply() -> dict[str, str]:
        engine = create_engine(database.admin, pool_size=1, max_overflow=0)
        try:
            async with engine.begin() as connection:
                before = await row_scope_ceilings(connection)
                await apply_row_scopes(connection, wanted)
        finally:
            await engine.dispose()
        return {
            grantee: f"{before[grantee].value} -> {scope.value}"
            for grantee, scope in sorted(wanted.items())
            if before.get(grantee) != scope
        }

    changed = asyncio.run(apply())
    print(json.dumps({"changed": changed}, indent=2))
    return 0


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        raise ValueError(f"{path} cannot be read") from None


def policy_explain(settings: Settings, args: argparse.Namespace) -> int:
    """Who may run the operations of a document, for what purpose, touching which PHI."""
    from graph.enforcement.explain import explain, render
    from graph.schema import schema

    explanations = explain(schema._schema, load_policy(settings), _read(args.file), args.operation)
    if args.format == "json":
        print(json.dumps([e.as_dict() for e in explanations], indent=2))
    else:
        print(render(explanations))
    return 0


def _policy_at(where: str) -> Policy:
    if where == "bundled":
        return bundled_policy()
    try:
        return parse_policy(_read(where))
    except PolicyError as error:
        raise ValueError(f"{where} is not a valid policy: {error}") from None


def policy_diff(settings: Settings, args: argparse.Namespace) -> int:
    """What changes between two policies (a file, or `bundled`), and for the operations
    given or registered, who gains or loses them. Exit 1 when anything widens, so CI
    can ask for a reviewer."""
    from graph.enforcement.explain import diff
    from graph.schema import schema

    documents = {name: _read(name) for name in args.operations}
    if args.registered:
        documents |= asyncio.run(_registered(settings))
    result = diff(schema._schema, _policy_at(args.old), _policy_at(args.new), documents)
    print(json.dumps(result.as_dict(), indent=2))
    return 1 if result.widens else 0


async def _registered(settings: Settings) -> dict[str, str]:
    from db import operations as store
    from db.engine import create_engine
    from graph.cli.main import open_database

    engine = create_engine(open_database(settings).app, pool_size=1, max_overflow=0)
    try:
        found = {}
        for row in await store.listing(engine):
            if row["source"] == "REGISTERED":
                text = await store.document(engine, str(row["sha256"]))
                if text is not None:
                    found[f"sha256:{str(row['sha256'])[:12]}"] = text
        return found
    finally:
        await engine.dispose()


def add_parsers(commands: Any) -> None:
    policy = commands.add_parser("policy", help="the minimum-necessary policy")
    actions = policy.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    show = actions.add_parser(
        "show",
        help="print who may read and write which classes, for which purpose (validates it)",
    )
    show.add_argument("--format", choices=("table", "json"), default="table")
    show.set_defaults(handler=policy_show)
    explain = actions.add_parser(
        "explain",
        help="for every role, scope and purpose: may it run this document's operations,"
        " and which PHI would they read or write (the gateway's own decision)",
    )
    explain.add_argument("file", help="a .graphql document")
    explain.add_argument("--operation", help="only this named operation")
    explain.add_argument("--format", choices=("table", "json"), default="table")
    explain.set_defaults(handler=policy_explain)
    compare = actions.add_parser(
        "diff",
        help="what changes between two policies, and who gains or loses which operations;"
        " exit 1 when anything widens",
    )
    compare.add_argument("old", help="a policy file, or `bundled`")
    compare.add_argument("new", help="a policy file, or `bundled`")
    compare.add_argument(
        "--operations", nargs="*", default=[], metavar="FILE", help=".graphql documents"
    )
    compare.add_argument(
        "--registered", action="store_true", help="also every registered operation"
    )
    compare.set_defaults(handler=policy_diff)
    apply = actions.add_parser(
        "apply-row-scopes",
        help="give row-level security the policy's row scope for each role and scope"
        " (needs the schema owner: PHIGATE_MIGRATION_DATABASE_URL)",
    )
    apply.set_defaults(handler=policy_apply_row_scopes)
