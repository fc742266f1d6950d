"""Control tables: runs and their counts, staged records, the dispatch state of waves and chunks,
the idempotency ledger and dead letters. They are the history of a migration and outlive Redis."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shared.schema.base import Base, utcnow
from shared.schema.money import Money

BigId = BigInteger().with_variant(Integer(), "sqlite")


class Run(Base):
    """One `cutover run` (kind ``run``) or one `cutover dlq replay` (kind ``replay``)."""

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="run")
    state: Mapped[str] = mapped_column(String(16), default="staging")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    files: Mapped[list[str]] = mapped_column(JSON, default=list)
    message: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(String(255))
    """``host:pid`` of the process the run depends on: the one staging it and, on the embedded
    default, the one holding its Redis and workers. Gone while staging: abandoned; gone while an
    embedded run loads: interrupted."""
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime)
    """Last sign of life of whatever works on the run (the stager, the workers' sweepers)."""
    progress_mark: Mapped[str | None] = mapped_column(String(64))
    """What the sweeper last saw of the dispatch (records in flight, chunks done): unchanged for
    ``stall_seconds`` means stalled."""
    progress_at: Mapped[datetime | None] = mapped_column(DateTime)


class RunEvent(Base):
    """What happened to a run that an operator should know of: a stalled chunk published again, a
    queue no worker takes. Shown by `cutover status RUN`."""

    __tablename__ = "run_events"
    __table_args__ = (Index("ix_run_events_run", "run_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)


class Installation(Base):
    """One row: this database's identity. Queue names carry it, so workers of another database on the
    same broker never take this database's messages."""

    __tablename__ = "installation"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class RunEntity(Base):
    """Per run and entity type: records read (at staging) and, once the run ends, its final counts."""

    __tablename__ = "run_entities"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    entity: Mapped[str] = mapped_column(String(64), primary_key=True)
    wave: Mapped[int] = mapped_column(Integer)
    read: Mapped[int] = mapped_column(Integer, default=0)
    committed: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    dead: Mapped[int] = mapped_column(Integer, default=0)
    blocked: Mapped[int] = mapped_column(Integer, default=0)


class StagedRecord(Base):
    """A record as read from its source, waiting for (or done with) its loader.
    ``dispatch_id`` is the run or replay that last published it; ``status`` is its outcome.

    Neither ``status`` nor ``target_id`` is indexed, and on PostgreSQL the table's pages are filled
    to half only (migration 0022): settling a record then rewrites its row in place (a HOT update)
    instead of writing a new entry into every index. The key's index is a hash index on PostgreSQL
    (migration 0024): it is only ever searched by equality, and a hash costs a staged record a
    third of what a B-tree entry of 64 random characters does."""

    __tablename__ = "staged_records"
    __table_args__ = (
        Index("ix_staged_dispatch_chunk", "dispatch_id", "wave", "chunk"),
        Index("ix_staged_run_natural", "run_id", "entity", "natural_key"),
        Index("ix_staged_key", "key", postgresql_using="hash"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    dispatch_id: Mapped[str] = mapped_column(String(40))
    entity: Mapped[str] = mapped_column(String(64))
    wave: Mapped[int] = mapped_column(Integer)
    chunk: Mapped[int] = mapped_column(Integer)
    source_file: Mapped[str] = mapped_column(Text)
    line: Mapped[int | None] = mapped_column(Integer)
    col: Mapped[int | None] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(64))
    natural_key: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    target_id: Mapped[int | None] = mapped_column(BigId)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class DispatchWave(Base):
    """Progress of one wave of a run or replay: chunks published and chunks whose chord has closed."""

    __tablename__ = "dispatch_waves"

    dispatch_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    wave: Mapped[int] = mapped_column(Integer, primary_key=True)
    chunks_total: Mapped[int] = mapped_column(Integer, default=0)
    next_chunk: Mapped[int] = mapped_column(Integer, default=0)
    chunks_done: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16), default="waiting")


class DispatchChunk(Base):
    """One chunk of a wave: claimed, published, emptied (its last record settled; exactly one worker
    claims that and sends ``chunk_done``), done (counted once, even if ``chunk_done`` comes twice)."""

    __tablename__ = "dispatch_chunks"

    dispatch_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    wave: Mapped[int] = mapped_column(Integer, primary_key=True)
    chunk: Mapped[int] = mapped_column(Integer, primary_key=True)
    published_at: Mapped[datetime | None] = mapped_column(DateTime)
    emptied_at: Mapped[datetime | None] = mapped_column(DateTime)
    done_at: Mapped[datetime | None] = mapped_column(DateTime)


class LedgerEntry(Base):
    """Idempotency ledger: a key here was committed once; the same key again is a duplicate."""

    __tablename__ = "ledger"
    __table_args__ = (Index("ix_ledger_entity_natural", "entity", "natural_key"),)

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    entity: Mapped[str] = mapped_column(String(64))
    natural_key: Mapped[str | None] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(String(64))
    target_id: Mapped[int | None] = mapped_column(BigId)
    run_id: Mapped[str] = mapped_column(String(40))
    record_id: Mapped[int] = mapped_column(BigId)
    committed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class DeadLetter(Base):
    """A record that could not load (``dead``) or waits for a dead parent (``blocked``), with
    everything needed to explain and replay it. Secret fields stay vault ciphertext."""

    __tablename__ = "dead_letters"
    __table_args__ = (
        UniqueConstraint("record_id"),
        Index("ix_dead_letters_parent_lookup", "entity", "ref_key", "state"),
        Index("ix_dead_letters_run_state", "run_id", "state"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("staged_records.id"))
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    entity: Mapped[str] = mapped_column(String(64))
    wave: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str] = mapped_column(String(8), default="load")
    """``read``: the source itself is wrong (fix the file, run again); ``load``: replayable."""
    state: Mapped[str] = mapped_column(String(16), default="open")
    error_class: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    field: Mapped[str | None] = mapped_column(String(128))
    value: Mapped[str | None] = mapped_column(Text)
    hint: Mapped[str | None] = mapped_column(Text)
    ref_key: Mapped[str | None] = mapped_column(Text)
    blocked_by: Mapped[int | None] = mapped_column(BigId)
    source_file: Mapped[str] = mapped_column(Text)
    line: Mapped[int | None] = mapped_column(Integer)
    col: Mapped[int | None] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class InvoicePlan(Base):
    """An invoice as the producer worked it out from file order: which account, which ``CloseInvoice``
    (the ``close_no``-th of the run) closed it, its name and sequence. Ledger lines carry the plan's
    number, so every worker builds the same invoice whatever order the lines arrive in."""

    __tablename__ = "invoice_plans"
    __table_args__ = (Index("ix_invoice_plans_close", "run_id", "close_no"),)

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    plan: Mapped[int] = mapped_column(Integer, primary_key=True)
    account: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    sequence: Mapped[int | None] = mapped_column(Integer)
    closed: Mapped[bool] = mapped_column(Boolean, default=False)
    printed: Mapped[bool] = mapped_column(Boolean, default=False)
    opening: Mapped[bool] = mapped_column(Boolean, default=False)
    close_no: Mapped[int | None] = mapped_column(Integer)
    source_file: Mapped[str] = mapped_column(Text)
    line: Mapped[int | None] = mapped_column(Integer)


class SourceTotal(Base):
    """What the source said, per run and account, summed by the producer while reading: the other
    side of `cutover reconcile`. Amounts as read (a Credit is Credit × Bulk)."""

    __tablename__ = "source_totals"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    account: Mapped[str] = mapped_column(String(255), primary_key=True)
    debits: Mapped[Decimal] = mapped_column(Money())
    credits: Mapped[Decimal] = mapped_column(Money())
    taxes: Mapped[Decimal] = mapped_column(Money())
    payments: Mapped[Decimal] = mapped_column(Money())
