"""`phigate console fetch-assets`: GraphiQL's pinned scripts and styles, from the npm
registry (or a hospital's internal mirror) into the directory the console serves them from.

Run once per checkout, and in the image's build; the console page says what to run when
they are missing, so `--if-reachable` lets a build without a route to npm go on.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from graph.http.console.assets import (
    DEFAULT_REGISTRY,
    AssetError,
    RegistryUnreachable,
    default_directory,
    fetch,
    missing,
)
from graph.settings import Settings


def console_fetch_assets(_: Settings, args: argparse.Namespace) -> int:
    from graph.cli.main import CommandError

    try:
        report = fetch(Path(args.directory), registry=args.registry, force=args.force)
    except RegistryUnreachable as exc:
        if not args.if_reachable:
            raise CommandError(str(exc)) from None
        kept = Path(args.directory).is_dir() and not missing(Path(args.directory))
        outcome = (
            f"the assets already in {args.directory} were kept"
            if kept
            else "the console's assets were not fetched, and the console will show what to run"
            " (phigate console fetch-assets)"
        )
        print(f"phigate: {exc}; {outcome}", file=sys.stderr)
        return 0
    except AssetError as exc:
        raise CommandError(str(exc)) from None
    print(
        json.dumps(
            {
                "directory": str(report.directory),
                "packages": report.versions,
                "downloaded": report.downloaded,
            },
            indent=2,
        )
    )
    return 0


def add_parsers(commands: Any) -> None:
    console = commands.add_parser("console", help="the analyst console (GraphiQL)")
    actions = console.add_subparsers(dest="console_command", required=True, metavar="ACTION")
    assets = actions.add_parser(
        "fetch-assets",
        help="download GraphiQL's pinned scripts and styles, check their integrity, and"
        " write them where the console serves them from",
    )
    assets.add_argument(
        "--directory",
        default=str(default_directory()),
        help="where to write them (env PHIGATE_CONSOLE_ASSETS, default var/console-assets)",
    )
    assets.add_argument(
        "--registry",
        default=os.environ.get("PHIGATE_NPM_REGISTRY") or DEFAULT_REGISTRY,
        help=f"npm registry or mirror URL (env PHIGATE_NPM_REGISTRY, default {DEFAULT_REGISTRY})",
    )
    assets.add_argument(
        "--force", action="store_true", help="download again even when all are present"
    )
    assets.add_argument(
        "--if-reachable",
        action="store_true",
        help="exit 0 when the registry cannot be reached (an integrity failure still exits 2)",
    )
    assets.set_defaults(handler=console_fetch_assets)
