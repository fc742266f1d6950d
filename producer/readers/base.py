"""The reader interface: a format's reader streams a file and yields records with their position.
A record-level problem travels with the record (``error``); a file-level one raises SourceError.

Which readers exist, and the options each takes, is declared in ``producer/formats.py``; this module
knows none of them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from shared.errors import Position, RecordError


@dataclass
class RawRecord:
    """A record as the reader understood it: typed, normalised field values, or the error that
    stops it from loading (it is then dead-lettered at read time, with its position)."""

    entity: str
    fields: dict[str, str]
    position: Position
    error: RecordError | None = None
    derived: dict[str, str] = field(default_factory=dict)
    """Facts the producer settles from file order or run options (a ledger line's invoice plan).
    They travel with the record but are not its content: they stay out of its digest and idempotency key."""


class Reader(Protocol):
    """Streams one file. ``options`` is the format's own options object (``producer/formats.py``)."""

    def read(self, path: Path, options: Any) -> Iterator[RawRecord]: ...
