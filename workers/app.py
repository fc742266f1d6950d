"""The worker entry point: ``celery -A workers.app worker`` (or ``cutover worker``).

The app is built for this database's identity (its queue names carry it), so a worker reads it at
start, waiting for the database if it is down. A database without cutover's schema stops the worker
with a message and exit status 4."""

from __future__ import annotations

import logging
import sys
from typing import Any

from celery.signals import setup_logging, worker_process_init

from shared.celery_app import build_app
from shared.db import engine_for
from shared.entities import REGISTRY
from shared.errors import ConfigError
from shared.identity import wait_for_installation
from shared.logs import configure_logging
from shared.settings import load_settings
from workers.runtime import reset_after_fork
from workers.sweeper import Sweeper
from workers.tasks import register_tasks

REFUSED = 4  # as ops/exitcodes.py


settings = load_settings()


def _build() -> Any:
    try:
        identity = wait_for_installation(engine_for(settings.effective_database_url))
        built = build_app(settings, REGISTRY, identity, only=settings.worker_queue_list)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(REFUSED) from None
    register_tasks(built)
    built.steps["worker"].add(Sweeper)
    return built


app = _build()


@worker_process_init.connect
def _fresh_connections(**_: Any) -> None:
    reset_after_fork()


@setup_logging.connect
def _logging(loglevel: Any = None, **_: Any) -> None:
    """Text, or JSON lines with the record's fields (``log_format``), for every logger of the worker."""
    configure_logging(settings.log_format, loglevel or logging.INFO)
