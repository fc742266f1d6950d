"""Everything that differs between the databases cutover writes to, one module per database, chosen
by capability with a generic fallback (the way dlt picks a destination's fastest loader): bulk
inserts that hand back the new ids, inserts that skip rows already there, set-based updates, bulk
loading of staged records, sequences moved past explicit ids, and how money is stored.

:class:`Dialect` is the generic path — SQLAlchemy Core, correct on any database (SQLite uses it
as it is). ``postgresql.py`` overrides what PostgreSQL does faster (arrays through ``unnest``,
``COPY``). A new database is one more module with a subclass, registered in :func:`dialect_for`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, Table, bindparam, event, insert, tuple_, update
from sqlalchemy.orm import Session

from shared.lengths import check_rows

DRY_RUN = "cutover.dry_run"
"""Session ``info`` flag of `cutover validate`: its transaction rolls back, so what cannot roll back
with it (a PostgreSQL sequence's ``setval``) is left alone."""
READ_ONLY = "cutover_read_only"
"""Execution option of connections that only read (``shared.db.read_engine``)."""


def key_columns(key: str | tuple[str, ...]) -> tuple[str, ...]:
    return (key,) if isinstance(key, str) else key


def table_of(model: Any) -> Table:
    """A mapped class's table, typed as one."""
    table: Table = model.__table__
    return table


class Dialect:
    """The generic path: statements SQLAlchemy compiles for any database."""

    name = "generic"
    money_as_integer = False
    """Store money as whole ten-thousandths in an integer column (databases without exact decimals)."""

    def insert_returning(self, session: Session, table: Table, rows: Sequence[dict[str, Any]],
                         returning: Sequence[str]) -> list[tuple[Any, ...]]:
        """Insert ``rows`` (dicts with the same keys); the ``returning`` columns of each new row, in
        the order of ``rows``."""
        if not rows:
            return []
        check_rows(table, rows)
        statement = insert(table).returning(*(table.c[name] for name in returning), sort_by_parameter_order=True)
        return [tuple(row) for row in session.execute(statement, list(rows))]

    def insert(self, session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            check_rows(table, rows)
            session.execute(insert(table), list(rows))

    def insert_missing(self, session: Session, table: Table, rows: Sequence[dict[str, Any]],
                       unique: Sequence[str]) -> None:
        """Insert the rows whose ``unique`` columns are not taken yet; a concurrent writer's row wins
        quietly (``INSERT … ON CONFLICT DO NOTHING``)."""
        from sqlalchemy.exc import IntegrityError

        for row in rows:  # generic: one savepoint a row
            try:
                with session.begin_nested():
                    session.execute(insert(table), [row])
            except IntegrityError:
                continue

    def update_rows(self, session: Session, table: Table, key: str | tuple[str, ...],
                    rows: Sequence[dict[str, Any]]) -> None:
        """``UPDATE table SET … WHERE key = …`` for each row (every row sets the same columns);
        ``key`` is a column or, for a composite key, a tuple of them."""
        if not rows:
            return
        check_rows(table, rows)
        keys = key_columns(key)
        columns = [name for name in rows[0] if name not in keys]
        statement = (update(table).where(*(table.c[k] == bindparam(f"_{k}") for k in keys))
                     .values({name: bindparam(f"_{name}") for name in columns}))
        session.connection().execute(statement, [{f"_{k}": v for k, v in row.items()} for row in rows])

    def add_to(self, session: Session, table: Table, key: str | tuple[str, ...],
               deltas: Sequence[dict[str, Any]]) -> None:
        """``UPDATE table SET c = c + :dc …`` for each row: amounts that many writers move at once add
        up whatever order they commit in. ``key`` as for :meth:`update_rows`."""
        if not deltas:
            return
        keys = key_columns(key)
        columns = [name for name in deltas[0] if name not in keys]
        statement = (update(table).where(*(table.c[k] == bindparam(f"_{k}") for k in keys))
                     .values({name: table.c[name] + bindparam(f"_{name}", type_=table.c[name].type) for name in columns}))
        session.connection().execute(statement, [{f"_{k}": v for k, v in row.items()} for row in deltas])

    def append_rows(self, session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        """Insert ``rows`` (dicts with the same keys) in their order, each taking its id from the
        table's own default, so the ids ascend in the rows' order; nothing is handed back: staging's
        bulk load of a batch that needs no id (no record in it is dead at read)."""
        if rows:
            session.execute(insert(table), list(rows))

    def insert_ids(self, session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Insert ``rows`` (dicts with the same keys) and hand back their new ids in the rows'
        order, ascending: staging's bulk load, where the id order is the read order."""
        if not rows:
            return []
        statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        return [row[0] for row in session.execute(statement, list(rows))]

    def analyze(self, session: Session, table: Table) -> None:
        """Refresh the planner's statistics of a table that just grew in bulk (nothing, generically)."""

    def group_in_memory(self, session: Session) -> None:
        """Let this transaction's ``GROUP BY`` over a whole run hash in memory rather than sort on
        disk (nothing, generically)."""

    def advance_sequence(self, session: Session, table: str, column: str, value: int) -> None:
        """Make the next id ``table.column`` hands out greater than ``value`` (an id written
        explicitly). Nothing to do where a new id is always one above the highest (SQLite)."""

    def configure(self, engine: Engine) -> None:
        """Connection settings the database needs (nothing, generically)."""

    def in_code_point_order(self, column: Any) -> Any:
        """``column`` to sort by so that text comes in the order Python sorts it (code points), and
        sorted streams can be merged in Python: SQLite compares text byte by byte, which is that order."""
        return column

    def any_of(self, column: Any, values: Sequence[Any]) -> Any:
        """``column IN (…)``: a batch's lookup of many values at once."""
        return column.in_(list(values))

    def keys_in(self, columns: Sequence[Any], values: Sequence[tuple[Any, ...]]) -> Any:
        """``(a, b) IN ((…), (…))``: a batch's lookup of many natural keys at once."""
        return tuple_(*columns).in_(list(values))


class SqliteDialect(Dialect):
    """SQLite (the embedded default) is shared by several worker processes: WAL mode, waits on locks
    instead of failing (busy_timeout), and write transactions start with ``BEGIN IMMEDIATE`` (a
    deferred one that reads and then writes can fail at once with "database is locked"), while
    read-only connections begin deferred: in WAL mode they neither take the write lock nor wait for it.
    It has no exact decimal type: money is kept as whole ten-thousandths in an integer."""

    name = "sqlite"
    money_as_integer = True

    def configure(self, engine: Engine) -> None:
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")

    def insert_missing(self, session: Session, table: Table, rows: Sequence[dict[str, Any]],
                       unique: Sequence[str]) -> None:
        if not rows:
            return
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        session.execute(sqlite_insert(table).values(list(rows)).on_conflict_do_nothing(index_elements=list(unique)))


def dialect_for(name: str) -> Dialect:
    """The dialect of a database, by SQLAlchemy's dialect name."""
    found = _KNOWN.get(name)
    if found is None and name == "postgresql":
        from shared.dialects.postgresql import PostgresDialect

        found = _KNOWN[name] = PostgresDialect()
    return found or GENERIC


def dialect_of(session: Session) -> Dialect:
    return dialect_for(session.get_bind().dialect.name)


GENERIC = Dialect()
_KNOWN: dict[str, Dialect] = {"sqlite": SqliteDialect()}
