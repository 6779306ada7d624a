from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Identity,
    Index,
    MetaData,
    String,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from db.models.base import NAMING_CONVENTION

AUDIT_SCHEMA = "audit"


class AuditBase(DeclarativeBase):
    metadata = MetaData(schema=AUDIT_SCHEMA, naming_convention=NAMING_CONVENTION)


class AuditEvent(AuditBase):
    """The audit trail: PHI access and security events. Identifiers only, never a
    value. Partitioned by month of ``occurred_at``; owned by a role the gateway never
    uses, which may only INSERT and SELECT."""

    __tablename__ = "events"
    __table_args__ = (
        # Append-only and time-ordered: a BRIN index is tiny and nearly free to maintain.
        Index("ix_events_occurred_at_brin", "occurred_at", postgresql_using="brin"),
        Index("ix_events_actor_id_occurred_at", "actor_id", "occurred_at"),
        Index(
            "ix_events_record_id_occurred_at",
            "record_id",
            "occurred_at",
            postgresql_where=text("record_id IS NOT NULL"),
        ),
        # Each distinct list of records once per transaction: an entry that repeats an
        # earlier entry's list (``record_ids_repeated``) is found through that entry
        # (db/audit.mentions), not indexed again.
        Index(
            "ix_events_record_ids",
            "record_ids",
            postgresql_using="gin",
            postgresql_where=text("NOT record_ids_repeated"),
        ),
        Index(
            "ix_events_break_glass_episode_id",
            "break_glass_episode_id",
            postgresql_where=text("break_glass_episode_id IS NOT NULL"),
        ),
        # The sequencer's reading order (see db/audit.seal).
        Index("ix_events_txid_id", "txid", "id"),
        {"postgresql_partition_by": "RANGE (occurred_at)"},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), primary_key=True, server_default=func.now()
    )
    category: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(40))
    outcome: Mapped[str] = mapped_column(String(10))
    actor_id: Mapped[str | None] = mapped_column(String(100))
    actor_kind: Mapped[str | None] = mapped_column(String(10))
    role: Mapped[str | None] = mapped_column(String(30))
    session_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    purpose: Mapped[str | None] = mapped_column(String(20))
    break_glass: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    operation_name: Mapped[str | None] = mapped_column(String(200))
    document_hash: Mapped[str | None] = mapped_column(String(64))
    field_path: Mapped[str | None] = mapped_column(String(200))
    record_id: Mapped[str | None] = mapped_column(String(100))
    # The records one field was read (or written) in, for one request: each (record,
    # field) is one logical entry; storing them together makes auditing a 100-row
    # list 4 rows instead of 400. Readers expand them (see db/audit_queries.py).
    record_ids: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(UUID(as_uuid=True)), server_default=text("'{}'")
    )
    client_ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(256))
    request_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(60))
    # For failures against an unknown account: SHA-256 of the submitted username,
    # so repeated guesses can be correlated without storing what was typed.
    subject_hash: Mapped[str | None] = mapped_column(String(64))
    # The data class of field_path (IDENTIFIER, CLINICAL, ...): for filtering by category.
    data_class: Mapped[str | None] = mapped_column(String(20))
    # A read allowed only through an open break-glass episode names the episode.
    break_glass_episode_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    # The writing transaction's id, set by the database: the sequencer seals entries in
    # this order once their transaction has finished. Not part of the entry's digest.
    txid: Mapped[int | None] = mapped_column(
        BigInteger, server_default=text("pg_current_xact_id()::text::bigint")
    )
    # True when an earlier entry of the same transaction, at the same time, holds the
    # same record_ids and is not repeated itself (a request's fields read in the same
    # records): the GIN index holds that entry only, and the accounting of disclosures
    # finds this one through it. Not part of the digest (where the index holds an entry,
    # not what happened); `phigate audit verify` checks every marked entry has its
    # indexed one.
    record_ids_repeated: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))


class ChainLink(AuditBase):
    """The hash chain over events, appended by the sequencer in the order it seals them:
    hash = SHA-256(previous hash || entry hash). Append-only, like the events."""

    __tablename__ = "chain"
    __table_args__ = (
        Index("ix_chain_seq_by_txid", "seq", postgresql_where=text("event_txid IS NOT NULL")),
    )

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    event_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    event_occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Where the sequencer resumes: (event_txid, event_id) of the last link.
    event_txid: Mapped[int | None] = mapped_column(BigInteger)
    entry_hash: Mapped[str] = mapped_column(String(64))
    chain_hash: Mapped[str] = mapped_column(String(64))
    sealed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Checkpoint(AuditBase):
    """A signed statement of the chain's head: anyone holding it can later tell whether
    the first ``count`` links are still what they were."""

    __tablename__ = "checkpoints"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
    head_hash: Mapped[str] = mapped_column(String(64))
    signed: Mapped[str] = mapped_column(String(4000))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class RetentionCut(AuditBase):
    """A month of events dropped after its retention period, by explicit command: the
    chain is verified from the link after the last cut."""

    __tablename__ = "retention_cuts"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    partition: Mapped[str] = mapped_column(String(63))
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_chain_hash: Mapped[str] = mapped_column(String(64))
    dropped_by: Mapped[str] = mapped_column(String(100))
    dropped_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
