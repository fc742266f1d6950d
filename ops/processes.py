"""Child processes that die with their parent, and a worker that is started again when it dies.

The embedded default's Redis and workers must never outlive the `cutover` command that started them
(a `kill -9` of that command used to leave them running, holding the SQLite file): on Linux the
kernel sends them a signal when their parent dies (``PR_SET_PDEATHSIG``), and each runs in a process
group of its own, so stopping it stops its pool processes too.

A worker that exits unexpectedly (a crash, an error it could not ride out) is started again with
back-off by whatever runs it — :class:`Supervisor`, used by the embedded default and by
`cutover worker` — unless it refused to start for a reason a restart cannot fix (exit status 4)."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

log = logging.getLogger("cutover")

PR_SET_PDEATHSIG = 1
REFUSED = 4
"""A child that exits with this status refused to start (configuration, schema): not restarted."""
BACKOFF_MAX = 60.0


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets ``sig`` when the process that started it dies."""

    def arm() -> None:
        if sys.platform.startswith("linux"):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, sig)
    return arm


def start_child(cmd: Sequence[str], env: dict[str, str] | None, log_file: Path | None,
                on_parent_death: int = signal.SIGTERM) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in its own process group, bound to this process's life; its output goes to
    ``log_file``, or to this process's own output."""
    out: IO[bytes] | None = None
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        out = open(log_file, "ab")  # noqa: SIM115 - the child writes to it; closed below in this process
    try:
        return subprocess.Popen(list(cmd), env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=die_with_parent(on_parent_death))
    finally:
        if out is not None:
            out.close()


def stop_group(proc: subprocess.Popen[bytes], grace: float, first: int = signal.SIGTERM) -> None:
    """Signal the child's whole process group, wait up to ``grace`` seconds, then kill what is left."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, first)
        except ProcessLookupError:
            pass
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # pool processes left behind by a worker that died first
    except ProcessLookupError:
        pass
    if proc.poll() is None:
        proc.wait()


class Supervisor:
    """Keeps one child running: started again, with back-off, after an unexpected exit."""

    def __init__(self, cmd: Sequence[str], env: dict[str, str] | None, log_file: Path | None,
                 say: Callable[[str], None] = log.warning) -> None:
        self.cmd, self.env, self.log_file, self.say = list(cmd), env, log_file, say
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._backoff = 1.0
        self._next_start = 0.0

    def start(self) -> subprocess.Popen[bytes]:
        self.process = start_child(self.cmd, self.env, self.log_file)
        return self.process

    def check(self) -> int | None:
        """Call often: restarts the child if it died. Returns the child's exit status when it refused
        to start (it is not restarted then), else None."""
        if self.process is None or self.process.poll() is None:
            return None
        status = self.process.returncode
        if status == REFUSED:
            return status
        now = time.monotonic()
        if self._next_start == 0.0:
            self._next_start = now + self._backoff
            where = f"; see {self.log_file}" if self.log_file else ""
            self.say(f"a worker exited (status {status}){where}; starting it again in {self._backoff:.0f} s")
            return None
        if now >= self._next_start:
            self.restarts += 1
            self._backoff = min(BACKOFF_MAX, self._backoff * 2)
            self._next_start = 0.0
            self.start()
        return None

    def stop(self, grace: float, first: int = signal.SIGTERM) -> None:
        if self.process is not None:
            stop_group(self.process, grace, first)


def run_supervised(cmd: Sequence[str], env: dict[str, str]) -> int:
    """`cutover worker`: run the worker in the foreground, pass on the signals that stop it (SIGTERM,
    SIGINT: warm shutdown; SIGQUIT: cold), and start it again whenever it exits on its own. Returns the
    exit status to end with: the worker's, once it was asked to stop or refused to start."""
    supervisor = Supervisor(cmd, env, None, say=lambda text: print(f"cutover worker: {text}", file=sys.stderr, flush=True))
    stopping: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        stopping.append(signum)
        if supervisor.process is not None and supervisor.process.poll() is None:
            try:
                os.killpg(supervisor.process.pid, signum)
            except ProcessLookupError:
                pass

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, forward)
    supervisor.start()
    while True:
        time.sleep(0.5)
        proc = supervisor.process
        assert proc is not None
        if stopping:
            if proc.poll() is not None:
                return max(0, proc.returncode)
            continue
        refused = supervisor.check()
        if refused is not None:
            return refused
