"""The reader interface: a format's reader streams a file and yields records with their position.
A record-level problem travels with the record (``error``); a file-level one raises SourceError."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from shared.errors import ConfigError, Position, RecordError

if TYPE_CHECKING:
    from producer.attachments import AttachmentStore
    from producer.readers.csv_profile import Profile


@dataclass
class RawRecord:
    """A record as the reader understood it: typed, normalised field values, or the error that
    stops it from loading (it is then dead-lettered at read time, with its position)."""

    entity: str
    fields: dict[str, str]
    position: Position
    error: RecordError | None = None
    derived: dict[str, str] = field(default_factory=dict)
    """Facts the producer settles from file order (a ledger line's invoice plan). They travel with
    the record but are not its content: they stay out of its digest and idempotency key."""


@dataclass(frozen=True)
class ReadOptions:
    """Run options that change how values read."""

    day_first: bool = False
    lenient_json: bool = False
    """iteras: accept ``//`` and ``/* */`` comments and trailing commas (the seed's own examples have them)."""
    manual_invoice_verification: bool = False
    """iteras: mark every imported subscription for manual invoice verification (go-live safety)."""
    profile: Profile | None = None
    """csv: the mapping profile (import type, columns, account-number recipe, invoice types)."""
    encoding: str | None = None
    """csv: the file's encoding (default: the profile's, else UTF-8 with or without BOM)."""
    create_missing: bool = False
    """csv: an autopay or paperless row naming an account that does not exist creates it first."""
    attachments: AttachmentStore | None = None
    """engageip: where ticket attachments are stored while reading (set by the Stager)."""


class Reader(Protocol):
    format_name: str

    def read(self, path: Path, options: ReadOptions) -> Iterator[RawRecord]: ...


FORMAT_BY_SUFFIX = {".xml": "engageip", ".json": "iteras", ".jsonl": "iteras", ".csv": "csv"}


def detect_format(path: Path) -> str:
    try:
        return FORMAT_BY_SUFFIX[path.suffix.lower()]
    except KeyError:
        raise ConfigError(
            f"{path}: cannot tell the format from the extension {path.suffix!r}; "
            f"name it with --format ({', '.join(sorted(set(FORMAT_BY_SUFFIX.values())))})"
        ) from None


def reader_for(format_name: str) -> Reader:
    if format_name == "engageip":
        from producer.readers.engageip import EngageIPReader

        return EngageIPReader()
    if format_name == "iteras":
        from producer.readers.iteras import IterasReader

        return IterasReader()
    if format_name == "csv":
        from producer.readers.csv_import import CsvReader

        return CsvReader()
    raise ConfigError(f"unknown format {format_name!r}; known: engageip, iteras, csv")
