"""Ctrl-C while a command waits: the signal never interrupts the work under way (a database call),
it ends the next pause at once, and the handler before it is back afterwards."""

from __future__ import annotations

import os
import signal
import time

import pytest

from ops.ctrl_c import DeferredCtrlC


def test_ctrl_c_waits_for_the_work_under_way_then_ends_the_pause_at_once() -> None:
    before = signal.getsignal(signal.SIGINT)
    finished_work = False
    with DeferredCtrlC() as ctrl_c:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)  # stands for a query in flight when Ctrl-C comes: it is not interrupted
        finished_work = True
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            ctrl_c.pause(30)
        assert time.monotonic() - started < 1, "the pause ends at once"
        with pytest.raises(KeyboardInterrupt):
            ctrl_c.check()
    assert finished_work
    assert signal.getsignal(signal.SIGINT) is before, "the handler before the wait is back"


def test_without_ctrl_c_a_pause_is_a_pause() -> None:
    with DeferredCtrlC() as ctrl_c:
        started = time.monotonic()
        ctrl_c.pause(0.3)
        ctrl_c.check()
    assert time.monotonic() - started >= 0.29
