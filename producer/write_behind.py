"""Staging's writes on a thread of their own, one batch behind the reading: while the database takes
one batch (``COPY``, its indexes, the format's own rows), the next one is read and built. The reading
is Python and holds the GIL; the writing mostly waits on the server's socket, which releases it — so
the two overlap even on one core, and a run is staged in the time of the slower of them.

Batches are written in the order they were read, one transaction each, by a single thread: the ids
the database hands out stay in read order. At most ``depth`` batches wait, so memory stays flat. The
first error of a write is raised on the reading side, at the next batch or at the end."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from types import TracebackType

Write = Callable[[], None]


class WriteBehind:
    """Runs the writes submitted to it, in order, on one thread; a context manager that waits for
    them all on the way out (and, when the reading failed, for the one under way only)."""

    def __init__(self, depth: int = 2) -> None:
        self._waiting: queue.Queue[Write | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._failed = threading.Event()
        self._thread = threading.Thread(target=self._work, name="cutover-staging-writer", daemon=True)

    def __enter__(self) -> WriteBehind:
        self._thread.start()
        return self

    def submit(self, write: Write) -> None:
        """Queue ``write`` behind the others (waits while ``depth`` are queued); raises the error of
        an earlier write, if one failed."""
        self._raise_if_failed()
        while True:
            try:
                self._waiting.put(write, timeout=0.2)
                return
            except queue.Full:
                self._raise_if_failed()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if kind is not None:  # the reading failed: what is queued is not written
            self._failed.set()
        self._stop()
        if kind is None:
            self._raise_if_failed()

    def _stop(self) -> None:
        while self._thread.is_alive():
            try:
                self._waiting.put(None, timeout=0.2)
                break
            except queue.Full:
                continue
        self._thread.join()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _work(self) -> None:
        while True:
            write = self._waiting.get()
            if write is None:
                return
            if self._failed.is_set():
                continue
            try:
                write()
            except BaseException as error:  # handed to the reading side, which raises it
                self._error = error
                self._failed.set()
