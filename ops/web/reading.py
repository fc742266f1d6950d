"""Sessions for the console's pages that only read.

cutover's engines start every SQLite transaction with ``BEGIN IMMEDIATE`` (``shared.db``), which
takes the single writer's lock: right for workers that read and then write, but a page that only
reads would then queue behind every batch the workers commit, and a run's page would stop updating
while the run is busiest. In WAL mode a reader needs no lock at all, so these sessions begin with a
plain (deferred) ``BEGIN``: a consistent snapshot that never waits for the workers and never makes
them wait. They never flush. On PostgreSQL they are ordinary sessions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from shared.db import engine_for, is_sqlite


def read_sessions(url: str) -> sessionmaker[Session]:
    if not is_sqlite(url):
        return sessionmaker(engine_for(url), expire_on_commit=False, autoflush=False)
    engine = create_engine(url, connect_args={"timeout": 60, "isolation_level": None})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")

    return sessionmaker(engine, expire_on_commit=False, autoflush=False)
