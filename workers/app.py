"""The worker entry point: ``celery -A workers.app worker`` (or ``cutover worker``)."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import setup_logging, worker_process_init

from shared.celery_app import build_app
from shared.entities import REGISTRY
from shared.settings import load_settings
from workers.runtime import reset_after_fork
from workers.tasks import register_tasks

app = build_app(load_settings(), REGISTRY)
register_tasks(app)


@worker_process_init.connect
def _fresh_connections(**_: Any) -> None:
    reset_after_fork()


@setup_logging.connect
def _logging(loglevel: Any = None, **_: Any) -> None:
    logging.basicConfig(level=loglevel or logging.INFO,
                        format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s")
