"""Field-level encryption cost: opening one value (data-key unwrap + AES-256-GCM
decrypt), and its share of a 100-patient query that selects both encrypted columns."""

from __future__ import annotations

import statistics
import time
import uuid
from typing import Any

from db.engine import create_engine
from graph.schema import build_schema
from tests.bench.harness import (
    Database,
    bench_cipher,
    in_process,
    interleaved,
    ratio,
    reader_session,
    summary,
)

FIELDS = "id mrn givenName familyName dateOfBirth phone email address { state } retentionClass"
WITH = f"{{ patients(first: 100) {{ edges {{ node {{ {FIELDS} ssn insuranceMemberId }} }} }} }}"
WITHOUT = f"{{ patients(first: 100) {{ edges {{ node {{ {FIELDS} createdAt updatedAt }} }} }} }}"


def per_value_us(samples: int = 20_000, repeats: int = 7) -> float:
    cipher = bench_cipher()
    row = str(uuid.uuid4())  # as the Patient type passes it
    blob = cipher.seal("patients", "ssn", row, "900-00-0000")
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(samples):
            cipher.open("patients", "ssn", row, blob)
        timings.append((time.perf_counter() - started) / samples * 1e6)
    return statistics.median(timings)


async def run(db: Database, *, rounds: int) -> dict[str, Any]:
    engine = create_engine(db.app, pool_size=2, max_overflow=0)
    session = await reader_session(db)
    schema = build_schema()
    try:
        results = await interleaved(
            {
                "with_encrypted": in_process(engine, schema, WITH, session),
                "without": in_process(engine, schema, WITHOUT, session),
            },
            rounds=rounds,
        )
    finally:
        await engine.dispose()
    open_us = per_value_us()
    query_ms = results["with_encrypted"].median
    return {
        "case": "open one encrypted value; 100 patients x 11 fields, two of them encrypted",
        "decrypt_us_per_value": round(open_us, 2),
        "decrypt_target_us": 5.0,
        "decrypt_share_of_query": round(200 * open_us / 1000 / query_ms, 4),
        "encrypted_vs_plain_fields_ratio": ratio(results, "with_encrypted", "without"),
        "timings": summary(results),
    }
