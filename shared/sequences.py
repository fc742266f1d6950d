"""Keep a table's id sequence ahead of ids written explicitly (imported customer ids).

PostgreSQL does not move a serial column's sequence when a row is inserted with its own id, so the
billing system's next insert would collide. SQLite needs nothing: a new rowid is one above the
highest. ``setval`` is not transactional, so concurrent workers take an advisory lock around the
compare-and-set: a lower id landing after a higher one can never move the sequence back."""

from __future__ import annotations

import zlib

from sqlalchemy import text
from sqlalchemy.orm import Session

DRY_RUN = "cutover.dry_run"
"""Session ``info`` flag of `cutover validate`: its transaction rolls back, so leave sequences alone
(``setval`` would not roll back with it)."""


def advance_past(session: Session, table: str, column: str, value: int) -> None:
    """Make the next id ``table.column``'s sequence hands out greater than ``value``."""
    if session.info.get(DRY_RUN) or session.get_bind().dialect.name != "postgresql":
        return
    params = {"qualified": table, "column": column, "value": value}
    if not _behind(session, params):
        return
    lock = zlib.crc32(f"cutover.sequence.{table}.{column}".encode())
    session.execute(text("SELECT pg_advisory_lock(:lock)"), {"lock": lock})
    try:
        if _behind(session, params):
            session.execute(text("SELECT setval(pg_get_serial_sequence(:qualified, :column), :value)"), params)
    finally:
        session.execute(text("SELECT pg_advisory_unlock(:lock)"), {"lock": lock})


def _behind(session: Session, params: dict[str, object]) -> bool:
    last = session.scalar(text("SELECT pg_sequence_last_value(pg_get_serial_sequence(:qualified, :column)::regclass)"),
                          params)
    return last is None or int(last) < int(str(params["value"]))
