"""`cutover dlq list|show`: dead letters as an operator reads them. Secrets stay masked."""

from __future__ import annotations

import json

from rich.table import Table
from sqlalchemy import select

from ops import exitcodes
from ops.backends import database, reading
from ops.console import make_console
from ops.report import masked_record
from producer.replay import LetterFilter
from shared.errors import ConfigError
from shared.schema.control import DeadLetter, StagedRecord
from shared.settings import Settings


def _letter_doc(letter: DeadLetter) -> dict[str, object]:
    return {
        "id": letter.id, "run_id": letter.run_id, "entity": letter.entity, "wave": letter.wave,
        "outcome": letter.outcome, "state": letter.state, "stage": letter.stage, "error_class": letter.error_class,
        "message": letter.message, "field": letter.field, "value": letter.value, "hint": letter.hint,
        "position": f"{letter.source_file}:{letter.line}", "attempts": letter.attempts, "blocked_by": letter.blocked_by,
        "created_at": letter.created_at.isoformat(timespec="seconds"),
    }


def list_letters(settings: Settings, letters: LetterFilter, limit: int, as_json: bool) -> int:
    database(settings)
    with reading(settings)() as session:
        rows = session.scalars(letters.apply(select(DeadLetter)).order_by(DeadLetter.wave, DeadLetter.id).limit(limit)).all()
        docs = [_letter_doc(r) for r in rows]
    if as_json:
        print(json.dumps(docs, indent=2))
        return exitcodes.OK
    if not docs:
        make_console().print(_none_match(letters), highlight=False)
        return exitcodes.OK
    table = Table(title=f"dead letters ({len(docs)} shown)")
    for column in ("id", "run", "entity", "outcome", "error", "position", "message"):
        table.add_column(column, overflow="fold")
    for d in docs:
        table.add_row(str(d["id"]), str(d["run_id"]), str(d["entity"]), str(d["outcome"]), str(d["error_class"]),
                      str(d["position"]), str(d["message"]) + (f" — {d['hint']}" if d["hint"] else ""))
    make_console().print(table)
    return exitcodes.OK


def _none_match(letters: LetterFilter) -> str:
    """What an empty listing means, and where to look next."""
    narrowed = [f"{name} {value}" for name, value in (("run", letters.run_id), ("entity", letters.entity),
                                                       ("error class", letters.error_class), ("outcome", letters.outcome))
                if value]
    which = f"{letters.state} " if letters.state != "any" else ""
    where = f" for {', '.join(narrowed)}" if narrowed else ""
    if narrowed:
        return f"no {which}dead letters{where} (`cutover dlq list --state any` lists every letter)"
    if letters.state == "open":
        return ("no open dead letters: nothing waits for a fix or a replay "
                "(`cutover dlq list --state any` also lists the replayed and discarded ones)")
    return f"no {which}dead letters"


def show_letter(settings: Settings, letter_id: int) -> int:
    database(settings)
    with reading(settings)() as session:
        letter = session.get(DeadLetter, letter_id)
        if letter is None:
            raise ConfigError(f"no dead letter #{letter_id}; `cutover dlq list` lists them")
        record = session.get_one(StagedRecord, letter.record_id)
        doc = _letter_doc(letter)
        doc["status"] = record.status
        masked = masked_record(letter.entity, record.payload)
    console = make_console()
    for key, value in doc.items():
        console.print(f"[bold]{key:12}[/bold] {value}", highlight=False)
    console.print("[bold]record[/bold]")
    for key, shown in masked.items():
        console.print(f"  {key} = {shown!r}", highlight=False)
    return exitcodes.OK
