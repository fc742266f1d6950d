"""Staging steps: what a format settles from file order while its records are staged, so that no
worker ever depends on the order messages arrive in (the ledger's invoices, iteras customer ids,
the csv pre-check).

Every hook does nothing by default, as in dramatiq's middleware: a step overrides only the hooks it
needs. The stager makes one step of each kind per run, for each format among its inputs, and calls
the hooks in this order: ``start_file`` and ``observe`` while reading, ``flush`` after every batch
read, ``settle`` once, then ``summary``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from producer.readers.base import RawRecord

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

StepWrite = Callable[["Session", str], None]
"""What a step had ready with a batch, written in the batch's transaction: ``write(session, run_id)``."""


class StagingStep:
    """One order-dependent step of a format. Made with the format's options."""

    def __init__(self, options: Any = None) -> None:
        self.options = options

    def start_file(self, path: Path) -> None:
        """A file of the format is about to be read."""

    def observe(self, raw: RawRecord) -> None:
        """One record, in read order, before it is staged: annotate ``raw.derived`` (facts that stay out
        of the digest), or set ``raw.error`` to refuse it at read."""

    def flush(self, final: bool) -> StepWrite | None:
        """Take what is ready to write, after a batch's last record was observed (``final``: the
        last batch, after every file has been read). The function returned writes it in that batch's
        transaction, which runs on the write-behind thread while reading goes on: it must carry what
        it writes, not read the step's state later."""
        return None

    def settle(self, session: Session, run_id: str) -> None:
        """After reading, in the transaction that makes the run ready: repeats are numbered and
        duplicate keys settled. Raise ``SourceError`` to refuse the whole run."""

    def summary(self) -> list[str]:
        """Lines to show the operator before anything loads."""
        return []
