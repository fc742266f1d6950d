"""The collector setting of staging and loading processes: start-up objects frozen, cycles made
later still collected. Each check runs in a fresh interpreter, so the test process keeps its own
collector settings."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_pool_process_after_fork_freezes_what_it_inherited() -> None:
    out = _run("""
        import gc
        from workers.runtime import reset_after_fork
        before = gc.get_freeze_count()
        reset_after_fork()
        print(before, gc.get_freeze_count() > 10_000)
    """)
    assert out == "0 True"


def test_cycles_made_after_the_freeze_are_still_collected_without_being_asked() -> None:
    out = _run("""
        import gc, weakref
        from shared.gc_tuning import settle_for_throughput
        settle_for_throughput()
        class Node: pass
        alive = weakref.WeakSet()
        for _ in range(200_000):
            a, b = Node(), Node()
            a.other, b.other = b, a
            alive.add(a)
        print(len(alive) < 20_000)
    """)
    assert out == "True", "memory grows: garbage cycles are never collected"
