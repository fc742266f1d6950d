"""The worker entry point: ``celery -A workers.app worker`` (or ``cutover worker``)."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import setup_logging, worker_process_init

from shared.celery_app import build_app
from shared.entities import REGISTRY
from shared.logs import configure_logging
from shared.settings import load_settings
from workers.runtime import reset_after_fork
from workers.tasks import register_tasks

settings = load_settings()
app = build_app(settings, REGISTRY)
register_tasks(app)


@worker_process_init.connect
def _fresh_connections(**_: Any) -> None:
    reset_after_fork()


@setup_logging.connect
def _logging(loglevel: Any = None, **_: Any) -> None:
    """Text, or JSON lines with the record's fields (``log_format``), for every logger of the worker."""
    configure_logging(settings.log_format, loglevel or logging.INFO)
