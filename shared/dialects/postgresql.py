"""PostgreSQL's fast paths. Rows travel as one array per column and are unpacked by ``unnest`` —
one statement and one round trip for a whole batch, with no per-row SQL to build — and staged
records are loaded with ``COPY``. Values go through psycopg's own adapters; the array types come
from the table's own column types, so they cannot drift from the schema."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Table, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from shared.dialects import DRY_RUN, Dialect
from shared.lengths import check_rows

_PG = postgresql.dialect()


class PostgresDialect(Dialect):
    name = "postgresql"

    def __init__(self) -> None:
        self._types: dict[tuple[str, str], str] = {}

    def _type(self, table: Table, column: str) -> str:
        found = self._types.get((table.name, column))
        if found is None:
            found = self._types[(table.name, column)] = table.c[column].type.compile(dialect=_PG)
        return found

    def _unnest(self, table: Table, columns: Sequence[str]) -> str:
        arrays = ", ".join(f"%s::{self._type(table, c)}[]" for c in columns)
        return f"SELECT * FROM unnest({arrays})"

    def _cursor(self, session: Session) -> Any:
        """A psycopg cursor on the session's own connection, inside its transaction."""
        driver: Any = session.connection().connection.driver_connection
        return driver.cursor()

    def insert_returning(self, session: Session, table: Table, rows: Sequence[dict[str, Any]],
                         returning: Sequence[str]) -> list[tuple[Any, ...]]:
        if not rows:
            return []
        check_rows(table, rows)
        columns = list(rows[0])
        sql = (f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT {', '.join(columns)} FROM "
               f"unnest({', '.join(f'%s::{self._type(table, c)}[]' for c in columns)}) WITH ORDINALITY "
               f"AS v({', '.join(columns)}, _n) ORDER BY _n RETURNING {', '.join(returning)}")
        with self._cursor(session) as cur:
            cur.execute(sql, [[row[c] for row in rows] for c in columns])
            return [tuple(r) for r in cur.fetchall()]

    def insert(self, session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        check_rows(table, rows)
        columns = list(rows[0])
        with self._cursor(session) as cur:
            cur.execute(f"INSERT INTO {table.name} ({', '.join(columns)}) {self._unnest(table, columns)}",
                        [[row[c] for row in rows] for c in columns])

    def insert_missing(self, session: Session, table: Table, rows: Sequence[dict[str, Any]],
                       unique: Sequence[str]) -> None:
        if not rows:
            return
        columns = list(rows[0])
        with self._cursor(session) as cur:
            cur.execute(f"INSERT INTO {table.name} ({', '.join(columns)}) {self._unnest(table, columns)} "
                        f"ON CONFLICT ({', '.join(unique)}) DO NOTHING", [[row[c] for row in rows] for c in columns])

    def update_rows(self, session: Session, table: Table, key: str, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        check_rows(table, rows)
        columns = list(rows[0])
        sets = ", ".join(f"{c} = v.{c}" for c in columns if c != key)
        with self._cursor(session) as cur:
            cur.execute(f"UPDATE {table.name} AS t SET {sets} FROM ({self._unnest(table, columns)}) AS v({', '.join(columns)}) "
                        f"WHERE t.{key} = v.{key}", [[row[c] for row in rows] for c in columns])

    def add_to(self, session: Session, table: Table, key: str, deltas: Sequence[dict[str, Any]]) -> None:
        if not deltas:
            return
        columns = list(deltas[0])
        sets = ", ".join(f"{c} = t.{c} + v.{c}" for c in columns if c != key)
        with self._cursor(session) as cur:
            cur.execute(f"UPDATE {table.name} AS t SET {sets} FROM ({self._unnest(table, columns)}) AS v({', '.join(columns)}) "
                        f"WHERE t.{key} = v.{key}", [[row[c] for row in deltas] for c in columns])

    def copy_in(self, session: Session, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        with self._cursor(session) as cur, cur.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def advance_sequence(self, session: Session, table: str, column: str, value: int) -> None:
        """``setval`` is not transactional, so concurrent workers take an advisory lock around the
        compare-and-set: a lower id landing after a higher one can never move the sequence back."""
        if session.info.get(DRY_RUN):
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
