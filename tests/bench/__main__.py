"""Run the benchmarks: `python -m tests.bench [--only NAME ...] [--rounds N] [--json FILE]`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from graph.logs import configure_logging
from tests.bench import (
    bench_baseline,
    bench_caches,
    bench_compliance,
    bench_database,
    bench_encryption,
    bench_http_overhead,
    bench_load,
    bench_peer,
)
from tests.bench.harness import database, machine

BENCHES = {
    "baseline": bench_baseline.run,
    "caches": bench_caches.run,
    "compliance": bench_compliance.run,
    "database": bench_database.run,
    "encryption": bench_encryption.run,
    "http": bench_http_overhead.run,
    "load": bench_load.run,
    "peer": bench_peer.run,
}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHES), help="run only these")
    parser.add_argument(
        "--rounds", type=int, default=200, help="timed rounds per case (default 200)"
    )
    parser.add_argument(
        "--patients", type=int, default=10_000, help="synthetic patients to seed (default 10000)"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=Path("tests/bench/results/latest.json"),
        help="where to write results",
    )
    args = parser.parse_args()
    configure_logging("WARNING", "json")
    db = database(args.patients)
    report = {"machine": machine(), "patients": args.patients, "results": {}}
    for name in args.only or sorted(BENCHES):
        print(f"running {name} ...", file=sys.stderr)
        report["results"][name] = asyncio.run(BENCHES[name](db, rounds=args.rounds))
        print(json.dumps({name: report["results"][name]}, indent=2))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
