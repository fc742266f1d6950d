"""The database's identity (one row, written by the schema migration). Queue names carry it, so
workers pointed at another database on the same broker never meet this database's messages."""

from __future__ import annotations

import logging
import time

from sqlalchemy import Engine, inspect, select
from sqlalchemy.exc import OperationalError

from shared.errors import ConfigError
from shared.schema.control import Installation

log = logging.getLogger("cutover.worker")


def installation_id(engine: Engine) -> str:
    """Raises ConfigError when the schema predates it, OperationalError when the database is down."""
    with engine.connect() as conn:
        if not inspect(conn).has_table(Installation.__tablename__):
            raise ConfigError("the database has no cutover schema yet (or an old one): run `cutover db upgrade`")
        found = conn.execute(select(Installation.id).limit(1)).scalar()
    if found is None:
        raise ConfigError("the database has no installation id: run `cutover db upgrade`")
    return str(found)


def wait_for_installation(engine: Engine, max_wait: float = 30.0) -> str:
    """A worker started while the database is down waits for it (saying so), rather than exiting."""
    delay, said = 1.0, 0.0
    started = time.monotonic()
    while True:
        try:
            return installation_id(engine)
        except OperationalError as exc:
            waited = time.monotonic() - started
            if waited - said >= 60 or said == 0.0:
                log.warning("database %s unreachable (%s); waiting for it", engine.url.render_as_string(hide_password=True),
                            str(exc.orig or exc).strip().splitlines()[0])
                said = waited or 0.001
            time.sleep(delay)
            delay = min(max_wait, delay * 2)
