"""Is anything still working on a run? A run's stored state says where it got to; what an operator
needs is whether it is moving. A run being staged whose producer is gone is *abandoned* (discard it);
a run loading that nothing works on any more — its embedded `cutover run` was killed, or no worker has
swept it for minutes — is *interrupted* (continue it with `cutover resume`)."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from shared.schema.base import utcnow
from shared.schema.control import Run

STAGING_SILENCE = timedelta(minutes=10)
"""A stager on another machine writes a heartbeat at least this often (every 2,000 records)."""
LOADING_SILENCE = timedelta(minutes=3)
"""Workers sweep every active run every ``sweep_seconds`` (30 s by default): three minutes of silence
means no worker is looking at the run."""


def this_process() -> str:
    """``host:pid:start`` of the calling process (the start time tells a reused pid apart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_ticks(os.getpid())}"


def effective_state(run: Run, now: datetime | None = None) -> str:
    """The stored state, or ``abandoned`` / ``interrupted`` when nothing works on the run."""
    now = now or utcnow()
    if run.state == "staging" and (_owner_gone(run.owner) or _silent(run, now, STAGING_SILENCE)):
        return "abandoned"
    loading = run.state in ("ready", "running")
    if loading and (_owner_gone(run.owner) or (run.owner is None and _silent(run, now, LOADING_SILENCE))):
        return "interrupted"
    return run.state


def _silent(run: Run, now: datetime, limit: timedelta) -> bool:
    last = run.heartbeat_at or run.created_at
    return last is not None and now - last > limit


def _owner_gone(owner: str | None) -> bool:
    """True only when the owner ran on this machine and is gone; another machine's owner is judged by
    the heartbeat."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    if host != socket.gethostname():
        return False
    pid_text, _, started = rest.partition(":")
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return bool(started) and _start_ticks(pid) != started


def _start_ticks(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), or '' where unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""
