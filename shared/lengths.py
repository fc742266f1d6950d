"""Text that does not fit its column, caught before it is sent: on every database alike (SQLite would
store it, PostgreSQL would fail the whole transaction). Used by the ORM (``before_flush``) and by the
bulk writers (``shared/dialects``); it imports no schema, so both can use it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared.errors import InvalidValue


def shown(value: str, keep: int = 80) -> str:
    """A dead letter shows the start of an over-long value, never megabytes of it."""
    clean = value.replace("\x00", "\\x00")
    return clean if len(clean) <= keep else f"{clean[:keep]}… ({len(value):,} characters)"


class ColumnTooLong(Exception):
    """A row about to be written holds a value longer than its column: raised before the flush, on
    every database alike (SQLite would store it, PostgreSQL would fail the whole transaction)."""

    def __init__(self, where: str, limit: int, value: str) -> None:
        self.where, self.limit, self.value = where, limit, value
        super().__init__(f"{where} holds at most {limit:,} characters; the value has {len(value):,}")

    def as_record_error(self, fields: Mapping[str, str]) -> InvalidValue:
        """Name the source field whose value it is, when the record has one with that exact value."""
        field = next((name for name, value in fields.items() if value == self.value), None)
        name = field or self.where
        return InvalidValue(f"{name} is {len(self.value):,} characters long; its target column {self.where} holds at "
                            f"most {self.limit:,}", field=field or self.where, value=shown(self.value),
                            hint=f"shorten it to {self.limit} characters at the source")


_STRING_COLUMNS: dict[Any, list[tuple[str, str, int]]] = {}


def _bounded(mapper: Any) -> list[tuple[str, str, int]]:
    found = _STRING_COLUMNS.get(mapper)
    if found is None:
        found = _STRING_COLUMNS[mapper] = [
            (attr.key, f"{mapper.persist_selectable.name}.{attr.columns[0].name}", int(attr.columns[0].type.length))
            for attr in mapper.column_attrs
            if isinstance(getattr(attr.columns[0].type, "length", None), int)
        ]
    return found


def check_lengths(session: Any, _context: Any = None, _instances: Any = None) -> None:
    """``before_flush``: refuse a new or changed row whose text exceeds its column."""
    from sqlalchemy import inspect

    for obj in (*session.new, *session.dirty):
        for key, where, limit in _bounded(inspect(obj).mapper):
            value = obj.__dict__.get(key)
            if isinstance(value, str) and len(value) > limit:
                raise ColumnTooLong(where, limit, value)


_TABLE_BOUNDS: dict[str, list[tuple[str, str, int]]] = {}


def check_rows(table: Any, rows: Sequence[Mapping[str, Any]]) -> None:
    """Refuse a row whose text exceeds its column, before a bulk write sends it (``ColumnTooLong``)."""
    bounds = _TABLE_BOUNDS.get(table.name)
    if bounds is None:
        bounds = _TABLE_BOUNDS[table.name] = [
            (column.name, f"{table.name}.{column.name}", int(column.type.length)) for column in table.columns
            if isinstance(getattr(column.type, "length", None), int)]
    if not bounds or not rows:
        return
    present = [b for b in bounds if b[0] in rows[0]]
    for row in rows:
        for name, where, limit in present:
            value = row[name]
            if isinstance(value, str) and len(value) > limit:
                raise ColumnTooLong(where, limit, value)
