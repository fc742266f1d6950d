"""One error tree. Record-level errors are *terminal* (dead-letter now) or *transient* (retry with
back-off); each carries what a report needs: entity, field, value, source position, hint."""

from __future__ import annotations

from dataclasses import dataclass


class CutoverError(Exception):
    """Root of every error cutover raises on purpose."""


class ConfigError(CutoverError):
    """Settings or command-line options that cannot work; fix the configuration and retry."""


class RegistryError(CutoverError):
    """The entity declarations are inconsistent (unknown dependency, cycle, duplicate name)."""


class SourceError(CutoverError):
    """A whole file cannot be read (not well-formed, truncated, DTD present): the run is refused."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        self.path, self.line, self.detail = path, line, message
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {message}")


@dataclass
class Position:
    """Where a record came from: file and line (column where the format knows it)."""

    file: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        out = self.file
        if self.line is not None:
            out += f":{self.line}"
            if self.column is not None:
                out += f":{self.column}"
        return out


class RecordError(CutoverError):
    """A record cannot load and retrying will not help: dead-letter it now."""

    def __init__(self, message: str, *, field: str | None = None, value: object = None, hint: str | None = None) -> None:
        self.message, self.field, self.value, self.hint = message, field, value, hint
        super().__init__(self.describe())

    def describe(self) -> str:
        text = self.message
        if self.hint:
            text += f" — {self.hint}"
        return text

    @property
    def error_class(self) -> str:
        return type(self).__name__


class UnknownName(RecordError):
    """An element or attribute name the format does not have (names are case-sensitive)."""


class InvalidValue(RecordError):
    """A field value of the wrong syntax or out of range."""


class MissingField(RecordError):
    """A required field is absent or empty."""


class UnknownReference(RecordError):
    """A value names configured data or an earlier record that does not exist."""


class Conflict(RecordError):
    """Same natural key as an existing row, different content (use --upsert to update instead)."""


class RuleViolation(RecordError):
    """A business rule refuses the record (cycle, re-parenting an invoiced account, ...)."""


class WorkerLost(RecordError):
    """The record's worker process died on it too many times (poison message)."""


class RetriesExhausted(RecordError):
    """A transient fault outlasted every retry."""


class LoaderCrashed(RecordError):
    """The loader failed unexpectedly on this record (a bug); the record is parked for replay."""


class Blocked(CutoverError):
    """A record's parent is dead-lettered or blocked: park the record, naming the parent."""

    def __init__(self, parent_entity: str, parent_key: str, parent_letter_id: int) -> None:
        self.parent_entity, self.parent_key, self.parent_letter_id = parent_entity, parent_key, parent_letter_id
        super().__init__(
            f"blocked: parent {parent_entity} {parent_key!r} is dead-lettered or blocked (dead letter #{parent_letter_id})"
        )
