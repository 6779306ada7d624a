"""`phigate policy show`: the minimum-necessary matrix, as reviewers read it."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from domain.policy import Policy
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


def add_parsers(commands: Any) -> None:
    policy = commands.add_parser("policy", help="the minimum-necessary policy")
    actions = policy.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    show = actions.add_parser(
        "show",
        help="print who may read and write which classes, for which purpose (validates it)",
    )
    show.add_argument("--format", choices=("table", "json"), default="table")
    show.set_defaults(handler=policy_show)
    apply = actions.add_parser(
        "apply-row-scopes",
        help="give row-level security the policy's row scope for each role and scope"
        " (needs the schema owner: PHIGATE_MIGRATION_DATABASE_URL)",
    )
    apply.set_defaults(handler=policy_apply_row_scopes)
