"""celery-batches, made to survive a broker reconnect.

celery-batches 0.11 arms its flush timer once, on the task instance, the first time a message
arrives (``_tref``). On a lost connection Celery clears the event loop's timers and rebuilds the
consumer, calling ``Strategy()`` again, but ``_tref`` still points at the cleared timer, so the
interval flush is dead: the worker then flushes only every ``flush_every`` messages and holds the tail
of every chunk unacknowledged for good (clokep/celery-batches#107, fixed upstream by #108, not
released). Here ``Strategy()`` re-arms the timer and drops the requests buffered on the old
connection (their delivery tags belong to a dead channel; kombu hands them back to Redis, or the
sweeper publishes their records again). A watchdog on the same timer flushes a buffer that has
waited far longer than ``flush_interval`` whatever the reason."""

from __future__ import annotations

import logging
from queue import Queue
from typing import Any

from celery_batches import Batches

log = logging.getLogger("cutover.worker")

WATCHDOG_FACTOR = 10
"""A buffer older than this many flush intervals is flushed by the watchdog."""


class ResilientBatches(Batches):
    abstract = True

    def __init__(self) -> None:
        super().__init__()
        self._flushes = 0
        self._waiting_since: int | None = None
        """The flush count when the watchdog last saw messages waiting in the buffer."""

    def Strategy(self, task: Any, app: Any, consumer: Any) -> Any:  # noqa: N802 - Celery's name
        me: Any = self  # celery-batches' attributes are untyped
        stale = me._buffer.qsize() + me._pending.qsize()
        if me._tref is not None:
            me._tref.cancel()
        me._tref = None
        me._buffer, me._pending = Queue(), Queue()
        self._waiting_since = None
        if stale:
            log.warning("%s: consumer restarted; %d message(s) buffered on the old connection are left to "
                        "be delivered again", self.name, stale)
        handler = super().Strategy(task, app, consumer)
        interval = max(1.0, float(self.flush_interval) * WATCHDOG_FACTOR)
        consumer.timer.call_repeatedly(interval, self._watchdog)
        return handler

    def _do_flush(self) -> None:
        self._flushes += 1
        super()._do_flush()

    def _watchdog(self) -> None:
        """Messages that waited in the buffer across a whole watchdog interval with no flush at all:
        the flush timer is dead, whatever killed it. Flush them, and let the next message re-arm it."""
        me: Any = self
        if not me._buffer.qsize():
            self._waiting_since = None
            return
        if self._waiting_since is None or self._waiting_since != self._flushes:
            self._waiting_since = self._flushes
            return
        log.warning("%s: %d buffered message(s) waited a whole watchdog interval without a flush; flushing them now",
                    self.name, me._buffer.qsize())
        if me._tref is not None:
            me._tref.cancel()
            me._tref = None
        self._waiting_since = None
        self._do_flush()
