"""`cutover report RUN`: one row per source record, so every row of the input can be traced to what
became of it. Streams from the database into JSON Lines and CSV; values of secret fields are already
masked in dead letters, and records' own fields are not written in the combined file.

With ``split``, as Salesforce's Data Loader does, also a success file (committed and skipped records,
with the id of the row each wrote or matched) and an error file (dead and blocked records, with their
fields, secrets masked, and the error): fix the error file's rows and load them again."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import and_, case, select
from sqlalchemy.orm import Session, aliased

from shared.dispatch import OUTCOMES
from shared.entities import REGISTRY
from shared.errors import ConfigError
from shared.schema.control import DeadLetter, Run, StagedRecord
from shared.vault import PREFIX as VAULT_PREFIX
from shared.vault import SECRET_MASK

COLUMNS = ("source_file", "line", "column", "entity", "idempotency_key", "outcome", "target_id", "error_class", "error",
           "field", "value", "hint", "dead_letter_id", "letter_state")
SUCCESS_COLUMNS = ("source_file", "line", "column", "entity", "idempotency_key", "outcome", "target_id")
ERROR_COLUMNS = ("source_file", "line", "column", "entity", "idempotency_key", "outcome", "error_class", "error", "field",
                 "value", "hint", "dead_letter_id", "letter_state")
SUCCEEDED, FAILED = ("committed", "skipped"), ("dead", "blocked")
FORMATS = ("jsonl", "csv")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")


def spreadsheet_safe(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run as a formula: text starting with ``= + - @`` (or a tab
    or carriage return) gets a leading apostrophe. Plain numbers such as ``-12.50`` stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.match(value):
        return "'" + value
    return value


def safe_row(row: dict[str, Any]) -> dict[str, Any]:
    return {key: spreadsheet_safe(value) for key, value in row.items()}


def _require_run(session: Session, run_id: str) -> None:
    run = session.get(Run, run_id)
    if run is None or run.kind != "run":
        raise ConfigError(f"no run {run_id!r}; `cutover status` lists runs (replays report through the runs they replay)")


def masked_record(entity: str, payload: dict[str, str]) -> dict[str, str]:
    """A record's fields as people may see them: secret fields, and anything the vault sealed (a
    misspelt secret attribute), show the mask."""
    secrets = set(REGISTRY[entity].secret_fields) if entity in REGISTRY else set()
    return {k: (SECRET_MASK if k in secrets or str(v).startswith(VAULT_PREFIX) else v) for k, v in payload.items()}


def source_fields(entity: str, payload: dict[str, str]) -> dict[str, str]:
    """The fields the source gave, masked: without the producer's derived fields (``_plan``…)."""
    return {k: v for k, v in masked_record(entity, payload).items() if not k.startswith("_")}


def _target_id() -> Any:
    """The row a record wrote or matched. A repeat settled at staging (skipped before any loader saw
    it) matched the row of the earlier record with its natural key."""
    earlier = aliased(StagedRecord)
    matched = (select(earlier.target_id)
               .where(earlier.run_id == StagedRecord.run_id, earlier.entity == StagedRecord.entity,
                      earlier.natural_key == StagedRecord.natural_key, earlier.target_id.is_not(None))
               .order_by(earlier.id).limit(1).scalar_subquery())
    repeat = and_(StagedRecord.status == "skipped", StagedRecord.target_id.is_(None))
    return case((repeat, matched), else_=StagedRecord.target_id).label("target_id")


def report_rows(session: Session, run_id: str) -> Iterator[dict[str, Any]]:
    """Every record read by the run, in source order, with its outcome (``pending`` while loading)."""
    _require_run(session, run_id)
    query = (
        select(StagedRecord.source_file, StagedRecord.line, StagedRecord.col, StagedRecord.entity, StagedRecord.key,
               StagedRecord.status, _target_id(), DeadLetter.error_class, DeadLetter.message, DeadLetter.field,
               DeadLetter.value, DeadLetter.hint, DeadLetter.id, DeadLetter.state)
        .outerjoin(DeadLetter, DeadLetter.record_id == StagedRecord.id)
        .where(StagedRecord.run_id == run_id).order_by(StagedRecord.id)
        .execution_options(yield_per=2000)
    )
    for row in session.execute(query):
        failed = row.status in ("dead", "blocked")
        yield {
            "source_file": row.source_file, "line": row.line, "column": row.col, "entity": row.entity,
            "idempotency_key": row.key, "outcome": row.status if row.status in OUTCOMES else "pending",
            "target_id": row.target_id,
            "error_class": row.error_class if failed else None, "error": row.message if failed else None,
            "field": row.field if failed else None, "value": row.value if failed else None,
            "hint": row.hint if failed else None, "dead_letter_id": row.id, "letter_state": row.state,
        }


def error_rows(session: Session, run_id: str) -> Iterator[dict[str, Any]]:
    """The run's dead and blocked records, in source order, with their fields (secrets masked) and error."""
    query = (
        select(StagedRecord.source_file, StagedRecord.line, StagedRecord.col, StagedRecord.entity, StagedRecord.key,
               StagedRecord.status, StagedRecord.payload, DeadLetter.error_class, DeadLetter.message, DeadLetter.field,
               DeadLetter.value, DeadLetter.hint, DeadLetter.id, DeadLetter.state)
        .outerjoin(DeadLetter, DeadLetter.record_id == StagedRecord.id)
        .where(StagedRecord.run_id == run_id, StagedRecord.status.in_(FAILED)).order_by(StagedRecord.id)
        .execution_options(yield_per=2000)
    )
    for row in session.execute(query):
        yield {
            "source_file": row.source_file, "line": row.line, "column": row.col, "entity": row.entity,
            "idempotency_key": row.key, "outcome": row.status, "error_class": row.error_class, "error": row.message,
            "field": row.field, "value": row.value, "hint": row.hint, "dead_letter_id": row.id,
            "letter_state": row.state, "fields": source_fields(row.entity, row.payload),
        }


def write_report(session: Session, run_id: str, out_dir: Path, formats: tuple[str, ...] = FORMATS,
                 split: bool = False) -> list[Path]:
    """Write ``<out_dir>/<run_id>.jsonl`` and/or ``.csv`` and, with ``split``, also
    ``<run_id>.success.*`` and ``<run_id>.errors.*``; returns the paths written."""
    _require_run(session, run_id)  # before any file is created
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [_write(out_dir / f"{run_id}.{fmt}", COLUMNS, report_rows(session, run_id)) for fmt in formats]
    if split:
        for fmt in formats:
            successes = ({c: row[c] for c in SUCCESS_COLUMNS} for row in report_rows(session, run_id)
                         if row["outcome"] in SUCCEEDED)
            written.append(_write(out_dir / f"{run_id}.success.{fmt}", SUCCESS_COLUMNS, successes))
            written.append(_write(out_dir / f"{run_id}.errors.{fmt}", ERROR_COLUMNS, error_rows(session, run_id),
                                  _field_names(session, run_id) if fmt == "csv" else ()))
    return written


def _field_names(session: Session, run_id: str) -> list[str]:
    """The CSV error file's field columns: every field name of the failed records, in order of first use."""
    names: dict[str, None] = {}
    for entity, payload in session.execute(select(StagedRecord.entity, StagedRecord.payload)
                                           .where(StagedRecord.run_id == run_id, StagedRecord.status.in_(FAILED))
                                           .order_by(StagedRecord.id).execution_options(yield_per=2000)):
        names.update(dict.fromkeys(source_fields(entity, payload)))
    return [name for name in names if name not in ERROR_COLUMNS]


def _write(path: Path, columns: tuple[str, ...], rows: Iterator[dict[str, Any]], field_columns: Any = ()) -> Path:
    """JSON Lines (one object a row, as is) or CSV (spreadsheet-safe; a row's ``fields`` spread over
    ``field_columns``), chosen by the file's extension."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        if path.suffix == ".jsonl":
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            return path
        writer = csv.DictWriter(handle, fieldnames=[*columns, *field_columns])
        writer.writeheader()
        for row in rows:
            fields = row.pop("fields", {})
            writer.writerow(safe_row({**row, **{name: fields.get(name) for name in field_columns}}))
    return path


def error_rows_csv(session: Session, run_id: str) -> tuple[str, int]:
    """The rows that did not load (dead or blocked) as CSV text, spreadsheet-safe, and their count."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    count = 0
    for row in report_rows(session, run_id):
        if row["outcome"] in ("dead", "blocked"):
            writer.writerow(safe_row(row))
            count += 1
    return buffer.getvalue(), count
