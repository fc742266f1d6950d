"""One console for every command: rich on a terminal, a wide plain layout when output goes to a
file or a pipe (logs and CI read better unwrapped)."""

from __future__ import annotations

import sys

from rich.console import Console

PIPE_WIDTH = 180


def make_console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    terminal = stream.isatty()
    # soft_wrap: a line of text (a dead letter, the reconciliation) stays one line in a log, however long;
    # tables still fit the width
    return Console(stderr=stderr, width=None if terminal else PIPE_WIDTH, soft_wrap=not terminal)
