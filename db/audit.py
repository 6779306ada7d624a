"""The audit trail in PostgreSQL: appending (one statement per request), sealing into
the hash chain (the sequencer), verifying, and signed checkpoints."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    Boolean,
    Integer,
    String,
    TextClause,
    and_,
    any_,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.engine import compile_for_driver
from db.models import AuditEvent, ChainLink, Checkpoint, RetentionCut
from db.unit_of_work import RequestDatabase
from domain.audit import FIELDS, GENESIS, chain_link, entry_digest, plain, plain_digest

events = AuditEvent.__table__
chain = ChainLink.__table__
checkpoints = Checkpoint.__table__
cuts = RetentionCut.__table__

# Only one sequencer at a time, across every gateway process and CLI.
SEQUENCER_LOCK = 0x50484941  # "PHIA"
# How far before the last sealed entry to look for entries that committed late.
LATE_COMMIT_MARGIN = timedelta(minutes=10)
SEALING_LAG_LIMIT = timedelta(hours=1)


# Every column the gateway writes: not the generated id, not the writing transaction's
# id (the database sets it, so the sequencer can trust it).
_COLUMNS = tuple(column.name for column in events.columns if column.name not in ("id", "txid"))
_POSITION = {name: index for index, name in enumerate(_COLUMNS)}
_FLAGS = ("break_glass", "record_ids_repeated")
_TEMPLATE: list[Any] = [
    False if name in _FLAGS else [] if name == "record_ids" else None for name in _COLUMNS
]


def _record(row: Mapping[str, Any]) -> tuple[Any, ...]:
    values = _TEMPLATE.copy()
    for name, value in row.items():
        values[_POSITION[name]] = value
    return tuple(values)


async def append(db: RequestDatabase, rows: Sequence[Mapping[str, Any]]) -> None:
    """All of a request's entries in one COPY, inside its transaction: the round trips
    do not grow with their number. (Measured against a pipelined prepared INSERT, one
    round trip fewer: COPY kept the in-process audit overhead lower, 1.08-1.09x vs
    1.10x, for a 100-patient read's four rows of 100 record ids each.)"""
    if rows:
        await db.copy("audit", "events", _COLUMNS, _marked([_record(row) for row in rows]))


_REPEATED = _POSITION["record_ids_repeated"]
_IDS, _AT = _POSITION["record_ids"], _POSITION["occurred_at"]


def _marked(records: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """``records`` (one COPY, so one transaction), each whose list of records an earlier
    one at the same time already holds marked ``record_ids_repeated``: the index holds
    each list once (``mentions``). Lists are compared only between entries of equal
    length, so a page's fields cost one comparison each, not a hash of every id."""
    seen: dict[tuple[Any, int], list[Any]] = {}
    marked = records
    for index, record in enumerate(records):
        ids = record[_IDS]
        if not ids or record[_REPEATED]:
            continue
        alike = seen.setdefault((record[_AT], len(ids)), [])
        if ids in alike:
            if marked is records:
                marked = records.copy()
            marked[index] = (*record[:_REPEATED], True, *record[_REPEATED + 1 :])
        else:
            alike.append(ids)
    return marked


async def ensure_partitions(engine: AsyncEngine, months_ahead: int = 2) -> int:
    async with engine.begin() as connection:
        return int(
            await connection.scalar(text("SELECT audit.ensure_partitions(:n)"), {"n": months_ahead})
        )


@dataclass(frozen=True)
class _Head:
    seq: int
    chain_hash: str
    event_id: int | None = None
    event_txid: int | None = None
    event_occurred_at: datetime | None = None


async def _head(connection: AsyncConnection) -> _Head:
    last = (
        await connection.execute(
            select(
                chain.c.seq,
                chain.c.chain_hash,
                chain.c.event_id,
                chain.c.event_txid,
                chain.c.event_occurred_at,
            )
            .order_by(chain.c.seq.desc())
            .limit(1)
        )
    ).first()
    return _Head(0, GENESIS) if last is None else _Head(**last._mapping)


# Entries whose transaction has finished (below the oldest transaction still running,
# as of this statement's snapshot), after the last one sealed: nothing can appear
# behind them any more, so each pass reads only what is new.
_HORIZON = literal_column("pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
# An entry's columns as the sequencer and verification read them: its record ids as one
# text ("a,b,c"), which is all the digest takes of them. Decoding each id of a uuid[]
# into an object, then writing it out as text again, was most of the sealing worker's
# time for a page of 100 records (0.24 to 0.29 ms per entry, 0.06 to 0.09 this way;
# PostgreSQL writes the text for 0.01 ms more).
_RECORD_IDS_TEXT = "record_ids_text"
_NESTED = func.array_ndims(events.c.record_ids) > 1
_AS_READ = [
    # The digest's fields first, in its order: the sequencer takes them by position.
    *(events.c[name] for name in FIELDS),
    *(c for c in events.columns if c.name not in FIELDS and c.name != "record_ids"),
    # A NULL id (none is ever written) as the digest has always spelt it.
    case((_NESTED, None), else_=func.array_to_string(events.c.record_ids, ",", "None")).label(
        _RECORD_IDS_TEXT
    ),
    # An array of more than one dimension (none is ever written, but the column allows
    # it) as stored: the digest has always taken its rows as they convert.
    case((_NESTED, events.c.record_ids), else_=None).label("record_ids"),
]


def _fields(row: Any) -> tuple[str, ...]:
    """The names of a result's columns (a SQLAlchemy row's or the driver's record's),
    taken once for all its rows (``Row._asdict`` looks them up for each row: computing a
    batch's links took 15 µs per entry that way, 12 this way)."""
    fields = tuple(row._fields if hasattr(row, "_fields") else row.keys())
    if len(fields) != len(row):
        raise ValueError("every column the sequencer reads is named")
    return fields


def _entry(row: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    """A row of audit.events (as ``_AS_READ`` or as stored) as ``entry_digest`` takes it;
    ``fields``: ``_fields`` of its result."""
    entry = dict(zip(fields, row, strict=True))
    if _RECORD_IDS_TEXT in entry:
        listed = entry.pop(_RECORD_IDS_TEXT)
        if listed is not None:
            entry["record_ids"] = listed.split(",") if listed else []
    return entry


_FINISHED_AFTER = (
    select(*_AS_READ)
    .where(
        events.c.txid < _HORIZON,
        tuple_(events.c.txid, events.c.id) > tuple_(bindparam("txid"), bindparam("id")),
        # Only while a gateway older than revision 0014 also seals (a rolling upgrade)
        # can an entry past the position already be in the chain: one index probe each.
        ~exists(select(1).where(chain.c.event_id == events.c.id)),
    )
    .order_by(events.c.txid, events.c.id)
    .limit(bindparam("batch"))
)


async def _unsealed(connection: AsyncConnection, head: _Head, batch: int) -> list[Any]:
    if head.event_txid is None:
        # Entries written before they carried a txid (revision 0014) are sealed first,
        # the old way: by time, compared against the chain, with a late-commit margin.
        legacy = select(*_AS_READ).where(
            events.c.txid.is_(None), ~exists(select(1).where(chain.c.event_id == events.c.id))
        )
        if head.event_occurred_at is not None:
            legacy = legacy.where(
                events.c.occurred_at >= head.event_occurred_at - LATE_COMMIT_MARGIN
            )
        rows = (
            await connection.execute(
                legacy.order_by(events.c.occurred_at, events.c.id).limit(batch)
            )
        ).all()
        if rows:
            return list(rows)
    if head.event_txid is not None:
        position = head
    else:
        # The chain's head is a legacy link (or one an older gateway appended during a
        # rolling upgrade): resume after the last link sealed by transaction.
        last = (
            await connection.execute(
                select(chain.c.event_txid, chain.c.event_id)
                .where(chain.c.event_txid.is_not(None))
                .order_by(chain.c.seq.desc())
                .limit(1)
            )
        ).first()
        position = (
            _Head(0, GENESIS, event_id=last.event_id, event_txid=last.event_txid)
            if last
            else _Head(0, GENESIS)
        )
    after = {"txid": position.event_txid or 0, "id": position.event_id or 0, "batch": batch}
    rows = await _finished_after(connection, after)
    if (
        not rows
        and position.event_txid
        and position.event_txid >= await connection.scalar(select(_HORIZON))
    ):
        # Transaction ids went backwards (the trail was restored into another cluster):
        # start from the beginning again; what is sealed already is skipped.
        rows = await _finished_after(connection, {**after, "txid": 0, "id": 0})
    return list(rows)


# The sequencer's read, straight to the driver: through SQLAlchemy's result rows it cost
# twice the worker's CPU per entry (16 against 8 µs).
_FINISHED_AFTER_SQL = compile_for_driver(_FINISHED_AFTER)


async def _finished_after(connection: AsyncConnection, after: Mapping[str, int]) -> list[Any]:
    raw = (await connection.get_raw_connection()).driver_connection
    arguments = _FINISHED_AFTER_SQL.arguments(after)
    return await raw.fetch(_FINISHED_AFTER_SQL.sql, *arguments)  # type: ignore[no-any-return,union-attr]


_LINK_COLUMNS = ("seq", "event_id", "event_txid", "event_occurred_at", "entry_hash", "chain_hash")


def chain_links(head: _Head, rows: Sequence[Any]) -> list[dict[str, Any]]:
    """The links that append ``rows`` (audit entries, in sealing order) after ``head``."""
    if not rows:
        return []
    fields = _fields(rows[0])
    return _linked(head, rows, [entry_digest(_entry(row, fields)) for row in rows])


# Which of the digest's fields are not text, a number or a truth value, by column type:
# only those are made plain (a time, a uuid), not every field of every entry.
_NOT_PLAIN = tuple(
    index
    for index, name in enumerate(FIELDS)
    if not isinstance(events.c[name].type, String | Integer | Boolean)
)


def _digests(rows: Sequence[Any]) -> list[str]:
    """``entry_digest`` of each row of the sequencer's own read (``_AS_READ``, as the
    driver returns it), from the digest's fields by position: a third of the sealing
    worker's CPU per entry went to building each entry as a mapping first, field by
    field (a test holds the two to the same digests)."""
    if not rows:
        return []
    names = _fields(rows[0])
    listed, nested = names.index(_RECORD_IDS_TEXT), names.index("record_ids")
    episode = names.index("break_glass_episode_id")
    digests = []
    for row in rows:
        if row[nested] is not None:  # as stored, the rare way (see _AS_READ)
            digests.append(entry_digest(_entry(row, names)))
            continue
        content = dict(zip(FIELDS, row, strict=False))  # the first len(FIELDS) columns
        for index in _NOT_PLAIN:
            content[FIELDS[index]] = plain(row[index])
        ids = row[listed]
        digests.append(plain_digest(content, ids.split(",") if ids else None, row[episode]))
    return digests


def _linked(head: _Head, rows: Sequence[Any], digests: Sequence[str]) -> list[dict[str, Any]]:
    seq, previous = head.seq, head.chain_hash
    links: list[dict[str, Any]] = []
    if not rows:
        return links
    fields = _fields(rows[0])  # a SQLAlchemy row or the driver's record: by position
    event_id, txid, occurred_at = (fields.index(n) for n in ("id", "txid", "occurred_at"))
    for row, digest in zip(rows, digests, strict=True):
        previous = chain_link(previous, digest)
        seq += 1
        links.append(
            {
                "seq": seq,
                "event_id": row[event_id],
                "event_txid": row[txid],
                "event_occurred_at": row[occurred_at],
                "entry_hash": digest,
                "chain_hash": previous,
            }
        )
    return links


# The sequencer's lock, and no parallel workers for its reads in this transaction: the
# planner chose a parallel plan for reading the unsealed entries (a few hundred rows,
# by index), and starting its two workers cost ten times the read (8.4 ms for 300 rows
# of a 200,000-entry trail, 0.9 ms without).
_SEQUENCE = text(
    "SELECT pg_try_advisory_xact_lock(:k)"
    " AND set_config('max_parallel_workers_per_gather', '0', true) = '0'"
)


SEAL_BATCH = 5000


async def seal(engine: AsyncEngine, *, batch: int = SEAL_BATCH) -> int:
    """Append unsealed entries to the chain, in the order their transactions wrote them;
    returns how many. Returns 0 at once if another process is sealing: requests never
    wait for the chain."""
    return (await _seal(engine, batch))[0]


async def _seal(engine: AsyncEngine, batch: int) -> tuple[int, bool]:
    """``seal``, and whether what it sealed were entries from before they carried a
    transaction id (revision 0014): those are sealed first, in passes of their own."""
    async with engine.begin() as connection:
        if not await connection.scalar(_SEQUENCE, {"k": SEQUENCER_LOCK}):
            return 0, False
        head = await _head(connection)
        rows = await _unsealed(connection, head, batch)
        links = _linked(head, rows, _digests(rows))
        if links:
            # One COPY, not an INSERT per link (an executemany is a statement per row,
            # each with its own executor start-up in the database).
            raw = await connection.get_raw_connection()
            await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
                chain.name,
                schema_name=chain.schema,
                columns=_LINK_COLUMNS,
                records=list(map(itemgetter(*_LINK_COLUMNS), links)),
            )
        return len(links), bool(links) and links[-1]["event_txid"] is None


async def seal_all(engine: AsyncEngine, *, batch: int = SEAL_BATCH) -> int:
    """Seal until caught up: a pass that seals less than a full batch found every entry
    whose transaction had finished. Looping until a pass found nothing never ended under
    load (something had always committed meanwhile), a few hundred entries a pass, each
    pass a transaction with its own durable commit: PostgreSQL spent about 55 µs per
    entry sealed that way, against 12 in passes of thousands (docs/performance.md). What
    arrives meanwhile waits for the next pass, at the sequencer's interval."""
    if batch < 1:
        raise ValueError("seal_all: batch must be at least 1 (a pass of none never ends)")
    total = 0
    while True:
        sealed, legacy = await _seal(engine, batch)
        total += sealed
        if sealed < batch and not legacy:
            return total


@dataclass
class VerifyReport:
    links: int = 0
    first_broken: str | None = None
    unsealed: int = 0
    # Unsealed for longer than SEALING_LAG_LIMIT: the sequencer is held back (a
    # long-running writing transaction) or stuck, and these entries are unprotected.
    unsealed_overdue: int = 0
    checkpoints: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.first_broken is None and not self.problems


async def _links(connection: AsyncConnection, after: int) -> AsyncIterator[Any]:
    joined = (
        select(chain, *_AS_READ)
        .select_from(
            chain.outerjoin(
                events,
                and_(
                    events.c.id == chain.c.event_id,
                    events.c.occurred_at == chain.c.event_occurred_at,
                ),
            )
        )
        .where(chain.c.seq > after)
        .order_by(chain.c.seq)
        .execution_options(yield_per=2000)
    )
    result = await connection.stream(joined)
    async for row in result:
        yield row


async def verify(engine: AsyncEngine) -> VerifyReport:
    """Recompute every link from its entry; the first mismatch is named."""
    report = VerifyReport()
    async with engine.connect() as connection:
        cut = (
            await connection.execute(select(cuts).order_by(cuts.c.last_seq.desc()).limit(1))
        ).first()
        seq, previous = (cut.last_seq, cut.last_chain_hash) if cut else (0, GENESIS)
        heads: dict[int, str] = {}
        fields: tuple[str, ...] | None = None
        async for row in _links(connection, seq):
            fields = fields or _fields(row)
            link = _entry(row, fields)
            if link["seq"] != seq + 1:
                report.first_broken = f"link {seq + 1} is missing (the next link is {link['seq']})"
                break
            if link["category"] is None:
                report.first_broken = (
                    f"link {link['seq']}: its audit entry {link['event_id']} was removed"
                )
                break
            if entry_digest({**link, "id": link["event_id"]}) != link["entry_hash"]:
                report.first_broken = (
                    f"link {link['seq']}: audit entry {link['event_id']} was altered"
                )
                break
            if chain_link(previous, link["entry_hash"]) != link["chain_hash"]:
                report.first_broken = f"link {link['seq']} does not follow from link {seq}"
                break
            seq, previous = link["seq"], link["chain_hash"]
            heads[seq] = previous
            report.links += 1
        if report.first_broken is None:
            for checkpoint in (
                await connection.execute(select(checkpoints).order_by(checkpoints.c.id))
            ).all():
                report.checkpoints += 1
                if checkpoint.count > seq or (
                    checkpoint.count in heads and heads[checkpoint.count] != checkpoint.head_hash
                ):
                    report.problems.append(
                        f"checkpoint {checkpoint.id} (at link {checkpoint.count})"
                        " no longer matches the chain"
                    )
        unfound = await connection.scalar(_REPEATING_NOTHING)
        if unfound:
            report.problems.append(
                f"{unfound} entries are marked as repeating the records of an indexed entry"
                " of their transaction that does not exist: the accounting of disclosures"
                " would not find them (record_ids_repeated altered out of band)"
            )
        unsealed = (
            await connection.execute(
                select(
                    func.count(),
                    func.count().filter(events.c.occurred_at < func.now() - SEALING_LAG_LIMIT),
                ).where(~exists(select(1).where(chain.c.event_id == events.c.id)))
            )
        ).one()
        report.unsealed, report.unsealed_overdue = int(unsealed[0]), int(unsealed[1])
        if report.unsealed_overdue:
            report.problems.append(
                f"{report.unsealed_overdue} entries written more than"
                f" {SEALING_LAG_LIMIT.total_seconds() / 3600:g} hour(s) ago are not sealed:"
                " a long-running transaction holds the sequencer back, or it is stuck"
            )
    return report


async def head(engine: AsyncEngine) -> tuple[int, str]:
    async with engine.connect() as connection:
        last = await _head(connection)
    return last.seq, last.chain_hash


async def store_checkpoint(engine: AsyncEngine, *, count: int, head_hash: str, signed: str) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            insert(checkpoints).values(count=count, head_hash=head_hash, signed=signed)
        )


async def stored_checkpoints(engine: AsyncEngine) -> Sequence[Any]:
    async with engine.connect() as connection:
        return (await connection.execute(select(checkpoints).order_by(checkpoints.c.id))).all()


async def hash_at(engine: AsyncEngine, seq: int) -> str | None:
    async with engine.connect() as connection:
        return await connection.scalar(select(chain.c.chain_hash).where(chain.c.seq == seq))


def _siblings(first: Any, repeat: Any) -> Any:
    """``repeat`` is found through ``first`` (``record_ids_repeated``)."""
    return and_(
        repeat.c.txid == first.c.txid,
        repeat.c.occurred_at == first.c.occurred_at,
        repeat.c.record_ids_repeated,
        ~first.c.record_ids_repeated,
        repeat.c.record_ids == first.c.record_ids,
    )


# Entries marked as repeating an indexed entry's records that is not there: what
# ``mentions`` would not find. Never written so (``_marked``, ``read_and_audit``); the
# mark is not part of an entry's digest (it says where the index holds the entry, not
# what happened, and a gateway of an earlier build may seal the entries), so
# verification checks it this way instead.
_REPEATED_ALIAS, _FIRST_ALIAS = events.alias("repeat"), events.alias("first")
_REPEATING_NOTHING = (
    select(func.count())
    .select_from(_REPEATED_ALIAS)
    .where(
        _REPEATED_ALIAS.c.record_ids_repeated,
        ~exists(select(1).where(_siblings(_FIRST_ALIAS, _REPEATED_ALIAS))),
    )
)


def mentions(
    record_id: str, *, since: datetime | None = None, until: datetime | None = None
) -> Any:
    """Rows holding entries about this record, before they are expanded into entries;
    every branch by index. The GIN index holds each list of records once per
    transaction: the entries that repeat an indexed entry's list (``record_ids_repeated``,
    same transaction and time) are found through it, by the transaction id's index, as
    one array of their ids computed once (an OR with a sub-select would be a filter
    over every entry of the trail instead)."""
    try:
        listed = events.c.record_ids.contains([uuid.UUID(record_id)])
    except ValueError:
        return events.c.record_id == record_id
    indexed = and_(listed, ~events.c.record_ids_repeated)
    first, repeat = _FIRST_ALIAS, _REPEATED_ALIAS
    repeats = (
        select(func.array_agg(repeat.c.id))
        .select_from(first.join(repeat, _siblings(first, repeat)))
        .where(first.c.record_ids.contains([uuid.UUID(record_id)]))
    )
    # The caller's window, when it has one, bounds the siblings looked up too (they were
    # written at their indexed entry's time), not only the rows they are matched with.
    if since is not None:
        repeats = repeats.where(first.c.occurred_at >= since)
    if until is not None:
        repeats = repeats.where(first.c.occurred_at < until)
    repeats = repeats.scalar_subquery()
    return or_(
        indexed,
        events.c.id == any_(func.coalesce(repeats, literal_column("'{}'::bigint[]"))),
        events.c.record_id == record_id,
    )


async def export(
    engine: AsyncEngine,
    *,
    since: datetime | None,
    until: datetime | None,
    actor_id: str | None,
    record_id: str | None,
    with_chain: bool = False,
) -> AsyncIterator[dict[str, Any]]:
    """Stored rows, oldest first; ``with_chain``: each with the chain hash that seals it
    (``chain_hash``, None while unsealed)."""
    query = (
        select(events, chain.c.chain_hash).outerjoin(chain, chain.c.event_id == events.c.id)
        if with_chain
        else select(events)
    )
    query = query.order_by(events.c.occurred_at, events.c.id).execution_options(yield_per=2000)
    if since is not None:
        query = query.where(events.c.occurred_at >= since)
    if until is not None:
        query = query.where(events.c.occurred_at < until)
    if actor_id is not None:
        query = query.where(events.c.actor_id == actor_id)
    if record_id is not None:
        # Stored rows, as chained (each verifiable on its own): a row may hold entries
        # about several records, listed in record_ids.
        query = query.where(mentions(record_id, since=since, until=until))
    async with engine.connect() as connection:
        result = await connection.stream(query)
        async for row in result:
            yield dict(row._mapping)


_MONTH_PARTITION = re.compile(r"events_[0-9]{4}_[0-9]{2}")


def _on_month(template: str, partition: str) -> TextClause:
    """A statement on one monthly partition; the name must be one (it is interpolated)."""
    if not _MONTH_PARTITION.fullmatch(partition):
        raise ValueError("not a monthly audit partition")
    return text(template.format(partition=partition))


@dataclass
class ExpiredMonth:
    partition: str
    starts: datetime
    ends: datetime
    entries: int
    unsealed: int


_MONTHS = text(
    """
    SELECT c.relname AS partition,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid),
                         'FROM \\(''([^'']+)''\\)'))[1]::timestamptz AS starts,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid),
                         'TO \\(''([^'']+)''\\)'))[1]::timestamptz AS ends
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    JOIN pg_class p ON p.oid = i.inhparent
    JOIN pg_namespace n ON n.oid = p.relnamespace
    WHERE n.nspname = 'audit' AND p.relname = 'events' AND c.relname ~ '^events_[0-9]{4}_[0-9]{2}$'
    ORDER BY c.relname
    """
)
_MONTH_COUNTS = text(
    "SELECT count(*) AS entries, count(*) FILTER (WHERE c.event_id IS NULL) AS unsealed"
    " FROM audit.events e LEFT JOIN audit.chain c ON c.event_id = e.id"
    " WHERE e.occurred_at >= :starts AND e.occurred_at < :ends"
)
_MONTH_LAST_LINK = text(
    "SELECT c.seq, c.chain_hash FROM audit.chain c"
    " WHERE c.event_occurred_at >= :starts AND c.event_occurred_at < :ends"
    " ORDER BY c.seq DESC LIMIT 1"
)


async def expired_months(
    engine: AsyncEngine, *, retention: timedelta, now: datetime
) -> list[ExpiredMonth]:
    """Whole monthly partitions that ended more than the retention period ago."""
    expired = []
    async with engine.connect() as connection:
        for month in (await connection.execute(_MONTHS)).all():
            if month.ends is None or month.ends > now - retention:
                continue
            bounds = {"starts": month.starts, "ends": month.ends}
            counts = (await connection.execute(_MONTH_COUNTS, bounds)).one()
            expired.append(
                ExpiredMonth(
                    month.partition, month.starts, month.ends, counts.entries, counts.unsealed
                )
            )
    return expired


async def drop_month(engine: AsyncEngine, month: ExpiredMonth, *, dropped_by: str) -> None:
    """Record where the chain resumes, then detach and drop the partition, in one
    transaction. Needs the audit owner's connection; refuses a month not fully sealed."""
    if month.unsealed:
        raise ValueError(f"{month.partition} holds entries not yet sealed into the chain")
    async with engine.begin() as connection:
        last = (
            await connection.execute(_MONTH_LAST_LINK, {"starts": month.starts, "ends": month.ends})
        ).first()
        previous = (
            await connection.execute(
                select(cuts.c.last_seq, cuts.c.last_chain_hash)
                .order_by(cuts.c.last_seq.desc())
                .limit(1)
            )
        ).first()
        if last is not None and (previous is None or last.seq > previous.last_seq):
            await connection.execute(
                insert(cuts).values(
                    partition=month.partition,
                    last_seq=last.seq,
                    last_chain_hash=last.chain_hash,
                    dropped_by=dropped_by,
                )
            )
        await connection.execute(
            text(f"ALTER TABLE audit.events DETACH PARTITION audit.{month.partition}")
        )
        await connection.execute(text(f"DROP TABLE audit.{month.partition}"))


# What every entry of a planned read shares, as parameters of the statement that reads
# and audits in one (``read_and_audit``); the entry's field and data class come from the
# arrays ``audit_fields`` and ``audit_classes``, its records from the rows read.
_SHARED = (
    "occurred_at", "actor_id", "actor_kind", "role", "session_id", "purpose", "break_glass",
    "operation_name", "document_hash", "client_ip", "user_agent", "request_id",
)  # fmt: skip
_SHARED_TYPES = {
    "occurred_at": "timestamptz", "session_id": "uuid", "break_glass": "boolean",
}  # fmt: skip


# What a statement that checks the caller's session itself takes (``read_and_audit``
# with ``checked``): the session and its secret as ``phigate.begin_request`` takes them,
# and what the gateway expects the database to find (the caller it decided for).
_SESSION = (
    "check_session", "check_secret", "check_scopes", "check_idle", "check_touch",
    "expect_kind", "expect_actor", "expect_role", "expect_row_scope", "expect_scopes",
)  # fmt: skip
_SESSION_TYPES = {
    "check_session": "uuid", "check_scopes": "text[]", "check_idle": "float8",
    "check_touch": "float8", "expect_scopes": "text[]",
}  # fmt: skip
# The CTE a checked read's own statement must reference (``checked.ok``) so that it
# runs only after, and only if, the session check passed (a lateral reference: the
# database cannot evaluate the read before the row it depends on exists).
CHECKED = "checked"


def session_check() -> tuple[str, tuple[str, ...]]:
    """The check ``read_and_audit`` opens with (``checked``), alone, as a transaction of
    its own: for a request that reads nothing (``{ __typename }``), one round trip
    instead of BEGIN, the check and COMMIT. Its one column, ``session_checked``, is 1
    when the database found the caller the gateway decided for, else 0."""
    names, placeholders = _placeholders((), _SESSION)
    statement = f"""
    WITH {_check(placeholders)}
    SELECT count(*) AS session_checked FROM {CHECKED}"""  # noqa: S608 - our names
    return statement, names


def _placeholders(
    parameters: tuple[str, ...], added: tuple[str, ...]
) -> tuple[tuple[str, ...], dict[str, str]]:
    """``parameters`` then ``added``, in asyncpg's numbering, and each added one's typed
    placeholder."""
    names = [*parameters]
    placeholders: dict[str, str] = {}
    for name in added:
        names.append(name)
        kind = _SHARED_TYPES.get(name) or _SESSION_TYPES.get(name)
        if kind is None:
            kind = "text[]" if name.startswith("audit_") else "text"
        placeholders[name] = f"${len(names)}::{kind}"
    return tuple(names), placeholders


def _check(p: dict[str, str]) -> str:
    """The CTEs ``caller`` (``phigate.begin_request``: the session's liveness, its idle
    clock, the row context) and ``checked`` (one row only if the database found the
    caller the gateway decided for)."""
    return f"""caller AS MATERIALIZED (
        SELECT * FROM phigate.begin_request({p["check_session"]}, {p["check_secret"]},
            {p["check_scopes"]}, {p["check_idle"]}, {p["check_touch"]}, false)
    ),
    {CHECKED} AS MATERIALIZED (
        SELECT 1 AS ok FROM caller c
        WHERE c.subject_kind = {p["expect_kind"]} AND c.actor = {p["expect_actor"]}
          AND c.role IS NOT DISTINCT FROM {p["expect_role"]}
          AND c.row_scope = {p["expect_row_scope"]} AND cardinality(c.episode_ids) = 0
          AND coalesce(
              (SELECT array_agg(g ORDER BY g COLLATE "C") FROM unnest(c.granted_scopes) g), '{{}}')
              = {p["expect_scopes"]}
    )"""  # noqa: S608 - our names


def read_and_audit(
    sql: str,
    parameters: tuple[str, ...],
    *,
    returned: str,
    checked: bool = False,
    related: Sequence[tuple[str, str]] = (),
) -> tuple[str, tuple[str, ...]]:
    """A read and the audit entries of what it returns, as one statement (one round trip,
    the records never travel back to be written): ``sql`` reads the rows; ``returned``
    selects, from them (``page``), the ids disclosed. One entry per (field, data class),
    with every disclosed id, as ``AuditTrail.entries`` writes them, only if any was; the
    index holds the first entry's list, the others are ``record_ids_repeated``.

    ``checked``: the statement also opens the request, as its own transaction: the
    database checks the session and sets the row context (``phigate.begin_request``),
    and compares what it found with what the gateway decided for (kind of caller,
    actor, role, row scope, a service's granted scopes, no open break-glass episode).
    ``sql`` must reference ``checked.ok``; it runs only if the check passed, and so do
    the audit entries. The first column, ``session_checked``, is 1 when it did and 0
    when it did not (the session ended, or the caller is not the one expected: nothing
    was read); a row whose ``id`` is NULL only carries that column.

    ``related``: (column, SQL) pairs, each SQL an aggregate of the page's records by
    ``patient_id`` (``agg``) that may read ``page``; each row gets its patient's ``agg``
    as that column (NULL when none), after the page's own columns."""
    names, placeholders = _placeholders(
        parameters, (*_SHARED, "audit_fields", "audit_classes", *(_SESSION if checked else ()))
    )
    shared = ", ".join(placeholders[name] for name in _SHARED)
    aggregates = "".join(
        f"\n    related_{n} AS ({aggregate})," for n, (_, aggregate) in enumerate(related)
    )
    columns = "".join(f', related_{n}.agg AS "{name}"' for n, (name, _) in enumerate(related))
    joins = "".join(
        f" LEFT JOIN related_{n} ON related_{n}.patient_id = page.id" for n in range(len(related))
    )
    if checked:
        opening = f"""
    WITH {_check(placeholders)},
    page AS MATERIALIZED (SELECT q.* FROM {CHECKED} CROSS JOIN LATERAL ({sql}) AS q),"""  # noqa: S608 - our compiled SQL and names
        result = f"""
    SELECT v.ok AS session_checked, page.*{columns}
    FROM (SELECT count(*) AS ok FROM {CHECKED}) AS v LEFT JOIN page ON true{joins}
    ORDER BY page.created_at, page.id"""  # noqa: S608 - our names
    else:
        opening = f"""
    WITH page AS MATERIALIZED ({sql}),"""
        result = f"""
    SELECT page.*{columns} FROM page{joins} ORDER BY page.created_at, page.id"""  # noqa: S608 - our names
    opening += aggregates
    statement = f"""{opening}
    disclosed AS (SELECT array_agg(id ORDER BY id) AS ids FROM ({returned}) AS r),
    audited AS (
        INSERT INTO audit.events (
            {", ".join(_SHARED)}, category, action, outcome, field_path, data_class, record_ids,
            record_ids_repeated
        )
        SELECT {shared}, 'ACCESS', 'READ', 'ALLOWED', f.path, f.class, d.ids, f.n > 1
        FROM unnest({placeholders["audit_fields"]}, {placeholders["audit_classes"]})
            WITH ORDINALITY AS f(path, class, n), disclosed AS d
        WHERE d.ids IS NOT NULL
    ){result}"""  # noqa: S608 - our compiled SQL and names
    return statement, names
