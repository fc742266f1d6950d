"""`cutover report RUN`: one row per source record, so every row of the input can be traced to what
became of it. Streams from the database into JSON Lines and CSV; values of secret fields are already
masked in dead letters, and records' own fields are not written at all."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.dispatch import OUTCOMES
from shared.errors import ConfigError
from shared.schema.control import DeadLetter, Run, StagedRecord

COLUMNS = ("source_file", "line", "column", "entity", "idempotency_key", "outcome", "target_id", "error_class", "error",
           "field", "value", "hint", "dead_letter_id", "letter_state")
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


def report_rows(session: Session, run_id: str) -> Iterator[dict[str, Any]]:
    """Every record read by the run, in source order, with its outcome (``pending`` while loading)."""
    _require_run(session, run_id)
    query = (
        select(StagedRecord.source_file, StagedRecord.line, StagedRecord.col, StagedRecord.entity, StagedRecord.key,
               StagedRecord.status, StagedRecord.target_id, DeadLetter.error_class, DeadLetter.message, DeadLetter.field,
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


def write_report(session: Session, run_id: str, out_dir: Path, formats: tuple[str, ...] = FORMATS) -> dict[str, Path]:
    """Write ``<out_dir>/<run_id>.jsonl`` and/or ``.csv`` in one pass; returns the paths by format."""
    _require_run(session, run_id)  # before any file is created
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {fmt: out_dir / f"{run_id}.{fmt}" for fmt in formats}
    handles = {fmt: path.open("w", encoding="utf-8", newline="") for fmt, path in paths.items()}
    try:
        writer = csv.DictWriter(handles["csv"], fieldnames=COLUMNS) if "csv" in handles else None
        if writer is not None:
            writer.writeheader()
        for row in report_rows(session, run_id):
            if "jsonl" in handles:
                handles["jsonl"].write(json.dumps(row, ensure_ascii=False) + "\n")
            if writer is not None:
                writer.writerow(safe_row(row))
    finally:
        for handle in handles.values():
            handle.close()
    return paths


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
