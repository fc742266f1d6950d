"""Engines and sessions for the configured database, and schema upgrades through Alembic.

How each database's connections are set up (SQLite's locking above all) is its dialect's
(``shared.dialects``); sessions that only read (``read_session_factory``) say so, so SQLite never
gives them the write lock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from shared.dialects import READ_ONLY, dialect_for
from shared.lengths import check_lengths

MIGRATIONS = Path(__file__).parent / "migrations"


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str, **kwargs: Any) -> Engine:
    if is_sqlite(url):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60, "isolation_level": None}, **kwargs)
        dialect_for("sqlite").configure(engine)
        return engine
    engine = create_engine(url, pool_pre_ping=True, **kwargs)
    dialect_for(engine.dialect.name).configure(engine)
    return engine


_ENGINES: dict[str, Engine] = {}


def engine_for(url: str) -> Engine:
    """One engine per URL per process (worker processes each build their own after fork)."""
    engine = _ENGINES.get(url)
    if engine is None:
        engine = _ENGINES[url] = make_engine(url)
    return engine


def forget_engines_after_fork() -> None:
    """In a forked child: drop the parent's pooled connections without closing them (closing would
    end the parent's sessions on the shared sockets); the child opens its own."""
    for engine in _ENGINES.values():
        engine.dispose(close=False)
    _ENGINES.clear()


def session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(engine_for(url), expire_on_commit=False)


def read_engine(url: str) -> Engine:
    """The engine for reading only: on SQLite its transactions begin deferred, so a progress poll or a
    report never waits for (or blocks) the workers' writes. Never write through it."""
    return engine_for(url).execution_options(**{READ_ONLY: True})


def read_session_factory(url: str) -> sessionmaker[Session]:
    """Sessions on :func:`read_engine`."""
    return sessionmaker(read_engine(url), expire_on_commit=False)


# Every session, on every database, refuses a value longer than its column before it is sent.
event.listen(Session, "before_flush", check_lengths)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply the Alembic migrations to the database at ``url``."""
    command.upgrade(alembic_config(url), revision)


def ensure_schema(url: str) -> None:
    """Upgrade when the schema is missing or behind; cheap when it is current."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    with read_engine(url).connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current != head:
        upgrade(url)

