"""Ctrl-C while a command waits for a run: the signal only raises a flag, and the wait raises
``KeyboardInterrupt`` between two polls. Raised at an arbitrary moment, it could land inside a
database call (a query, a connection being reset), which then fails on its own terms — a half-reset
connection, a logged traceback — before the command can stop its workers and print what to type."""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any


class DeferredCtrlC:
    """A context manager for the main thread's waiting loop. Elsewhere (the web console's threads,
    which have no signals) it does nothing, and ``pause`` only waits."""

    def __init__(self) -> None:
        self.pressed = threading.Event()
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> DeferredCtrlC:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_signal)
            self._installed = True
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.pressed.set()

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` if Ctrl-C came since the wait began."""
        if self.pressed.is_set():
            raise KeyboardInterrupt

    def pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less: Ctrl-C ends the pause at once, with ``KeyboardInterrupt``."""
        if self.pressed.wait(seconds):
            raise KeyboardInterrupt
