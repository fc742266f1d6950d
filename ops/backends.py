"""Bring up what a command needs: the database (schema upgraded for the embedded default), and —
when no broker is configured — the embedded Redis and local workers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from ops.embedded import EmbeddedRedis, LocalWorkers
from shared.celery_app import build_app
from shared.db import ensure_schema, read_engine, read_session_factory, session_factory, upgrade
from shared.entities import REGISTRY
from shared.errors import ConfigError
from shared.identity import installation_id
from shared.settings import Settings


def database(settings: Settings) -> sessionmaker[Session]:
    """Sessions on the configured database. The embedded SQLite upgrades itself; a configured
    database must be upgraded on purpose (`cutover db upgrade`), so we only check it is current."""
    url = settings.effective_database_url
    if not settings.database_url:
        ensure_schema(url)
    else:
        _require_current(url)
    return session_factory(url)


def _require_current(url: str) -> None:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy.exc import OperationalError

    from shared.db import alembic_config, engine_for, read_engine

    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    try:
        with read_engine(url).connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    except OperationalError as exc:
        raise ConfigError(f"cannot reach the database {engine_for(url).url.render_as_string(hide_password=True)}: "
                          f"{str(exc.orig).strip().splitlines()[0] if exc.orig else exc}") from None
    if current is None:
        raise ConfigError(f"the database has no cutover schema yet (cutover needs {head}): run `cutover db upgrade`")
    if current != head:
        raise ConfigError(f"the database schema is at {current}, cutover needs {head}: run `cutover db upgrade`")


def reading(settings: Settings) -> sessionmaker[Session]:
    """Sessions that only read (status, reports, progress polls): on SQLite they never wait for the
    workers' write lock. Call :func:`database` first (it checks or upgrades the schema)."""
    return read_session_factory(settings.effective_database_url)


@contextmanager
def broker(settings: Settings, local_workers: int | None) -> Iterator[tuple[Celery, LocalWorkers | None]]:
    """The Celery app on the configured broker, or on an embedded Redis started for this command.
    Local workers run when the broker is embedded, or when asked for (``local_workers`` > 0)."""
    with ExitStack() as stack:
        if settings.embedded_broker:
            stack.enter_context(EmbeddedRedis(settings))
        workers = None
        if settings.embedded_broker or (local_workers or 0) > 0:
            workers = stack.enter_context(LocalWorkers(settings, concurrency=local_workers or None))
        yield build_app(settings, REGISTRY, installation_id(read_engine(settings.effective_database_url))), workers


def upgrade_database(settings: Settings) -> str:
    url = settings.effective_database_url
    upgrade(url)
    return url
