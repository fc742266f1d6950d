"""The garbage collector, set for processes that build and drop many small objects per record.

A staging producer and a loading pool process allocate dicts, tuples and rows by the thousand per
batch. With CPython's default thresholds a full collection comes every 70,000 or so allocations
and walks every object the process holds — SQLAlchemy's metadata, Celery, the registry, all built
once at start and never garbage. ``gc.freeze()`` moves what exists at that point out of the
collector's sight for good, and a larger first-generation threshold makes collections rarer; the
young objects of a batch are still collected. Memory stays flat: reference counting frees almost
everything, and what forms a cycle is still collected, only less often."""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000
"""Allocations (net of frees) between first-generation collections; CPython's default is 700."""


def settle_for_throughput() -> None:
    """Freeze everything built so far (start-up objects live as long as the process) and collect
    the young generation less often."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
