"""The sweeper's home: a thread in each worker's main process (a Celery bootstep), so every place
that runs workers — `cutover worker`, the embedded default, the compose file — heals stalled runs
with nothing more to start. Several workers sweeping at once is safe (``shared/sweeper.py``)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import bootsteps
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy.exc import OperationalError

from shared.sweeper import sweep
from workers.runtime import runtime

log = logging.getLogger("cutover.sweeper")


class Sweeper(bootsteps.StartStopStep):
    """Every ``sweep_seconds``, look at every active run of this database."""

    label = "cutover sweeper"

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self, worker: Any) -> None:
        self.thread = threading.Thread(target=self._loop, args=(worker.app,), name="cutover-sweeper", daemon=True)
        self.thread.start()

    def stop(self, worker: Any) -> None:
        self.stopping.set()

    def _loop(self, app: Any) -> None:
        rt = runtime()
        interval = rt.settings.sweep_seconds
        while not self.stopping.wait(interval):
            try:
                sweep(rt.sessions, app, rt.registry, app.conf.cutover_identity, rt.window, rt.settings.stall_seconds)
            except (OperationalError, BrokerError, ConnectionError, OSError) as exc:
                log.warning("sweeper: database or broker unreachable (%s: %s); looking again in %.0f s",
                            type(exc).__name__, str(exc).strip().splitlines()[0] if str(exc).strip() else "", interval)
            except Exception:  # the sweeper must outlive any one bad sweep
                log.exception("sweeper: a sweep failed; looking again in %.0f s", interval)
