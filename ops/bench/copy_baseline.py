"""The yardstick for `cutover bench`: how fast PostgreSQL itself loads the rows a migration produced.

After a run has filled the target tables, each table is exported with ``COPY … TO STDOUT`` (not timed)
and loaded back into an empty twin in a scratch schema (same columns, defaults, checks and indexes, no
foreign keys), so the migration's rows/s can be read against what the same server does with the same
rows in bulk. Two ceilings are measured on the same twins:

* ``copy``: ``COPY twin FROM STDIN`` — the raw bulk-load ceiling;
* ``staged_insert``: ``COPY`` into an unlogged staging table, then ``INSERT INTO twin SELECT … ON CONFLICT
  DO NOTHING`` — the ceiling for an *idempotent* bulk load, the fairer comparison for a loader that must
  tolerate redelivery.

Each table is one timed transaction, commit included. Twins are created (and emptied) in a transaction
of their own beforehand: PostgreSQL skips WAL for a COPY into a table created in the same transaction
(with ``wal_level=minimal``), which would flatter the baseline. PostgreSQL through psycopg 3 only."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any, Literal

import psycopg
import sqlalchemy as sa
from psycopg import sql

SCRATCH_SCHEMA = "cutover_bench_copy"
TARGET_MODULES = ("target", "ledger", "subscriptions", "portal", "services")
"""Modules of ``shared.schema`` whose tables a migration fills (``control`` holds cutover's own state)."""
CONTROL_TABLES = ("ledger",)
"""Control tables a migration writes once per committed record: the idempotency ledger is part of its cost."""
SPOOL_IN_MEMORY = 256 * 1024 * 1024
"""Exports up to this size stay in memory; larger ones spill to a temporary file."""
BLOCK = 1024 * 1024

Format = Literal["binary", "text"]


@dataclass
class TableCopy:
    """One table loaded into its twin: rows, the timed seconds (commit included) and the bytes fed."""

    table: str
    rows: int
    seconds: float
    bytes: int
    inserted: int | None = None
    """``staged_insert`` only: rows the INSERT wrote (equals ``rows`` on an empty twin)."""
    stage_seconds: float | None = None
    """``staged_insert`` only: the part of ``seconds`` spent on the COPY into staging."""

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"table": self.table, "rows": self.rows, "seconds": round(self.seconds, 6),
                               "bytes": self.bytes, "rows_per_second": round(self.rows_per_second, 1)}
        if self.inserted is not None:
            out["inserted"] = self.inserted
        if self.stage_seconds is not None:
            out["stage_seconds"] = round(self.stage_seconds, 6)
        return out


@dataclass
class CopyFigures:
    """One method over all tables; the overall rate is total rows / total seconds (not a mean of rates)."""

    method: Literal["copy", "staged_insert"]
    format: Format
    tables: list[TableCopy] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def seconds(self) -> float:
        return sum(t.seconds for t in self.tables)

    @property
    def bytes(self) -> int:
        return sum(t.bytes for t in self.tables)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "format": self.format, "rows": self.rows, "seconds": round(self.seconds, 6),
                "bytes": self.bytes, "rows_per_second": round(self.rows_per_second, 1),
                "tables": [t.to_dict() for t in self.tables]}


@dataclass
class CopyBaseline:
    """Both ceilings, measured on the same exported bytes and the same twins."""

    copy: CopyFigures
    staged_insert: CopyFigures

    def to_dict(self) -> dict[str, Any]:
        return {"copy": self.copy.to_dict(), "staged_insert": self.staged_insert.to_dict()}


def target_tables(engine: sa.Engine) -> list[str]:
    """The non-empty tables a migration fills (target modules plus the idempotency ledger), parents first,
    so the baseline copies exactly the rows the run produced and nothing it did not."""
    from shared.schema import metadata
    from shared.schema.base import Base

    modules = {f"shared.schema.{name}" for name in TARGET_MODULES}
    wanted = {m.local_table.name for m in Base.registry.mappers
              if m.class_.__module__ in modules and isinstance(m.local_table, sa.Table)}
    wanted.update(CONTROL_TABLES)
    present = set(sa.inspect(engine).get_table_names())
    names = [t.name for t in metadata.sorted_tables if t.name in wanted and t.name in present]
    with engine.connect() as conn:
        return [name for name in names
                if conn.execute(sa.text(f'SELECT EXISTS (SELECT 1 FROM "{name}")')).scalar_one()]


def copy_rate(engine: sa.Engine, tables: Sequence[str] | None = None, *, fmt: Format = "binary",
              schema: str = SCRATCH_SCHEMA) -> CopyFigures:
    """``COPY twin FROM STDIN`` per table: the fastest PostgreSQL loads these rows."""
    return _measure(engine, tables, fmt, schema, plain=True, staged=False).copy


def staged_insert_rate(engine: sa.Engine, tables: Sequence[str] | None = None, *, fmt: Format = "binary",
                       schema: str = SCRATCH_SCHEMA) -> CopyFigures:
    """COPY into unlogged staging + ``INSERT … ON CONFLICT DO NOTHING`` per table: the idempotent ceiling."""
    return _measure(engine, tables, fmt, schema, plain=False, staged=True).staged_insert


def copy_baseline(engine: sa.Engine, tables: Sequence[str] | None = None, *, fmt: Format = "binary",
                  schema: str = SCRATCH_SCHEMA) -> CopyBaseline:
    """Both ceilings in one pass: each table is exported once and loaded twice into the same twin."""
    return _measure(engine, tables, fmt, schema, plain=True, staged=True)


@contextmanager
def _driver_connection(engine: sa.Engine) -> Iterator[psycopg.Connection[Any]]:
    """The psycopg 3 connection behind a pooled SQLAlchemy one, in manual-commit mode while we hold it."""
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        if not isinstance(conn, psycopg.Connection):
            raise TypeError(f"the COPY baseline needs PostgreSQL through psycopg 3 (postgresql+psycopg://), "
                            f"not {engine.dialect.name}+{engine.dialect.driver}")
        conn.rollback()
        autocommit = conn.autocommit
        conn.autocommit = False
        try:
            yield conn
        finally:
            if not conn.closed:
                conn.rollback()
                conn.autocommit = autocommit
    finally:
        raw.close()


def _measure(engine: sa.Engine, tables: Sequence[str] | None, fmt: Format, schema: str, *,
             plain: bool, staged: bool) -> CopyBaseline:
    if fmt not in ("binary", "text"):
        raise ValueError(f"fmt must be 'binary' or 'text', not {fmt!r}")
    names = list(tables) if tables is not None else target_tables(engine)
    result = CopyBaseline(CopyFigures("copy", fmt), CopyFigures("staged_insert", fmt))
    scratch = sql.Identifier(schema)
    with _driver_connection(engine) as conn:
        # A leftover from an interrupted run would make CREATE fail; it is ours by name, so it goes.
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(scratch))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(scratch))
        conn.commit()
        try:
            for name in names:
                _measure_table(conn, name, schema, fmt, result, plain=plain, staged=staged)
        finally:
            if not conn.closed:
                conn.rollback()
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(scratch))
                conn.commit()
    return result


def _measure_table(conn: psycopg.Connection[Any], name: str, schema: str, fmt: Format, result: CopyBaseline, *,
                   plain: bool, staged: bool) -> None:
    source = sql.Identifier(*name.split(".", 1))
    bare = name.split(".", 1)[-1]
    twin = sql.Identifier(schema, bare)
    staging = sql.Identifier(schema, f"{bare}__staging")
    columns = _copyable_columns(conn, source)
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    options = sql.SQL("(FORMAT BINARY)" if fmt == "binary" else "(FORMAT TEXT)")

    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
        exported, size = _export(conn, sql.SQL("COPY {} ({}) TO STDOUT {}").format(source, cols, options), spool)
        conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(twin, source))
        if staged and not _has_unique_index(conn, twin):
            raise ValueError(f"{name} has no primary key or unique index: ON CONFLICT would have nothing to conflict on")
        conn.commit()

        if plain:
            start = time.perf_counter()
            rows = _feed(conn, sql.SQL("COPY {} ({}) FROM STDIN {}").format(twin, cols, options), spool)
            conn.commit()
            seconds = time.perf_counter() - start
            _check_rows(name, exported, rows)
            result.copy.tables.append(TableCopy(name, rows, seconds, size))

        if staged:
            conn.execute(sql.SQL("TRUNCATE {}").format(twin))
            conn.execute(sql.SQL("CREATE UNLOGGED TABLE {} AS SELECT {} FROM {} WITH NO DATA").format(staging, cols, source))
            conn.commit()
            start = time.perf_counter()
            rows = _feed(conn, sql.SQL("COPY {} ({}) FROM STDIN {}").format(staging, cols, options), spool)
            stage_seconds = time.perf_counter() - start
            cur = conn.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT DO NOTHING")
                               .format(twin, cols, cols, staging))
            inserted = cur.rowcount
            conn.commit()
            seconds = time.perf_counter() - start
            _check_rows(name, exported, rows)
            result.staged_insert.tables.append(TableCopy(name, rows, seconds, size, inserted, stage_seconds))
            conn.execute(sql.SQL("DROP TABLE {}").format(staging))

        conn.execute(sql.SQL("DROP TABLE {}").format(twin))  # free the space before the next table
        conn.commit()


def _copyable_columns(conn: psycopg.Connection[Any], source: sql.Identifier) -> list[str]:
    """Stored columns in table order: generated ones can be neither copied in nor inserted."""
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped"
        " AND attgenerated = '' ORDER BY attnum", (source.as_string(conn),)).fetchall()
    conn.commit()
    return [r[0] for r in rows]


def _has_unique_index(conn: psycopg.Connection[Any], table: sql.Identifier) -> bool:
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = %s::regclass AND indisunique)",
                       (table.as_string(conn),)).fetchone()
    return bool(row and row[0])


def _export(conn: psycopg.Connection[Any], statement: sql.Composed, spool: IO[bytes]) -> tuple[int, int]:
    """Untimed: the rows as PostgreSQL writes them, so the load reads exactly what the run stored."""
    with conn.cursor() as cur:
        with cur.copy(statement) as copy:
            for block in copy:
                spool.write(block)
        rows = cur.rowcount
    conn.commit()
    return rows, spool.tell()


def _feed(conn: psycopg.Connection[Any], statement: sql.Composed, spool: IO[bytes]) -> int:
    spool.seek(0)
    with conn.cursor() as cur:
        with cur.copy(statement) as copy:
            while block := spool.read(BLOCK):
                copy.write(block)
        return cur.rowcount


def _check_rows(name: str, exported: int, loaded: int) -> None:
    if exported != loaded:
        raise RuntimeError(f"{name}: exported {exported} rows but COPY loaded {loaded}")
