"""Stage a run: read every file, write its records into ``staged_records`` in bulk, and settle in
the producer everything that depends on file order, so no worker ever does:

* occurrence numbers of repeated content (the n-th identical record gets the n-th key);
* duplicate natural keys inside the run (the earlier record wins: a later identical one is skipped,
  a later different one is a conflict);
* chunk numbers per wave, the unit of dispatch;
* what each format settles itself, through its staging steps (``producer/steps.py``): the invoice
  of each ledger line and the source's money per account (``producer.ledger``), the ids of
  customers the source gave none (``producer.customers``), the csv pre-check (``producer.precheck``).

Memory stays flat: records go to the database in batches, and only per-entity counters are kept.
A file-level error (not well-formed, DTD, unreadable) refuses the whole run: nothing staged remains.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from difflib import get_close_matches
from functools import partial
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from producer.formats import FORMATS, SourceFile
from producer.readers.base import RawRecord
from producer.steps import StagingStep, StepWrite
from producer.write_behind import WriteBehind
from shared.dialects import dialect_of, table_of
from shared.envelope import content_digest, idempotency_key, natural_key_text, show_key
from shared.errors import Conflict, Position, RecordError, SourceError, UnknownName
from shared.letters import supersede_earlier_letters
from shared.limits import check_values
from shared.liveness import this_process
from shared.registry import Registry
from shared.schema.base import utcnow
from shared.schema.control import DeadLetter, DispatchWave, InvoicePlan, Run, RunEntity, SourceTotal, StagedRecord
from shared.vault import SECRET_MASK, Vault

log = logging.getLogger(__name__)

BATCH = 2000
NAME_SETS_REMEMBERED = 4096
"""Sets of field names whose secrecy is remembered (memory stays flat whatever a file holds)."""


@dataclass
class StagingResult:
    run_id: str
    read: Counter[str] = field(default_factory=Counter)
    dead_at_read: int = 0
    precheck: list[str] = field(default_factory=list)
    """What the formats' staging steps say before anything loads (the csv pre-check's summary)."""


def new_run_id(kind: str = "run") -> str:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{'r' if kind == 'run' else 'x'}{stamp}-{uuid.uuid4().hex[:6]}"


class Stager:
    """Writes one run's records into the control tables."""

    def __init__(self, sf: sessionmaker[Session], registry: Registry, vault: Vault, chunk_size: int,
                 max_field_chars: int = 1_000_000) -> None:
        self.sf, self.registry, self.vault, self.chunk_size = sf, registry, vault, chunk_size
        self.max_field_chars = max_field_chars
        self.secret_names = {s.casefold() for e in registry for s in e.secret_fields}
        self._names_with_secrets: dict[tuple[str, ...], bool] = {}

    def stage(self, sources: list[SourceFile], run_options: dict[str, Any], run_id: str | None = None) -> StagingResult:
        """Stage every source (read through its format's options, ``producer/formats.py``) as one run."""
        run_id = run_id or new_run_id()
        with self.sf.begin() as session:
            session.add(Run(id=run_id, kind="run", state="staging", options=run_options,
                            files=[str(s.path) for s in sources], owner=this_process(), heartbeat_at=utcnow()))
        result = StagingResult(run_id)
        steps = staging_steps(sources)
        try:
            self.stage_files(run_id, sources, steps, result)
            with self.sf.begin() as session:
                dialect_of(session).analyze(session, table_of(StagedRecord))
            with self.sf.begin() as session:
                dialect_of(session).group_in_memory(session)
                self._number_repeats(session, run_id)
                _log_read_failures(session, run_id)
                self._settle_duplicate_keys(session, run_id)
                supersede_earlier_letters(session, run_id)
                for step in _all(steps):
                    step.settle(session, run_id)
                self._write_dispatch_plan(session, run_id, result)
                session.get_one(Run, run_id).state = "ready"
            result.precheck = [line for step in _all(steps) for line in step.summary()]
            log.info("run %s staged: %d record(s) from %d file(s), %d refused at read", run_id, sum(result.read.values()),
                     len(sources), result.dead_at_read, extra={"run_id": run_id, "records": sum(result.read.values())})
        except SourceError as exc:
            self.refuse(run_id, str(exc))
            raise
        except BaseException as exc:
            self.refuse(run_id, f"staging stopped: {type(exc).__name__}: {exc}")
            raise
        return result

    def refuse(self, run_id: str, message: str) -> None:
        """Undo a run's staging and keep only its refusal, so nothing of it can be loaded."""
        with self.sf.begin() as session:
            undo_staging(session, run_id, "refused", message)
        log.info("run %s refused: %s", run_id, message, extra={"run_id": run_id})

    # -- reading ---------------------------------------------------------------------------------

    def stage_files(self, run_id: str, sources: list[SourceFile], steps: dict[str, list[StagingStep]],
                    result: StagingResult, *, keep_rows: bool = True) -> None:
        """The per-record work of staging, in read order: read, let the format's steps observe,
        protect secrets, digest, keys, chunk numbers; the rows are written ``BATCH`` at a time, with
        the steps' own writes, one batch behind the reading (``producer/write_behind.py``).
        ``keep_rows=False`` builds every row and drops it (the memory benchmark measures the reading
        path alone)."""
        with WriteBehind() as writer:
            for batch, final in self.read_batches(run_id, sources, steps, result):
                ready = [write for step in _all(steps) if (write := step.flush(final)) is not None]
                writer.submit(partial(self._write_batch, run_id, batch if keep_rows else [], ready))

    def _write_batch(self, run_id: str, batch: list[tuple[dict[str, Any], RecordError | None]],
                     ready: list[StepWrite]) -> None:
        """One staged batch and what the steps had ready with it, in one transaction (on the
        write-behind thread, while the next batch is read)."""
        with self.sf.begin() as session:
            if batch:
                session.execute(update(Run).where(Run.id == run_id).values(heartbeat_at=utcnow()))
                self._write(session, run_id, batch)
            for write in ready:
                write(session, run_id)

    def read_batches(self, run_id: str, sources: list[SourceFile], steps: dict[str, list[StagingStep]],
                     result: StagingResult) -> Iterator[tuple[list[tuple[dict[str, Any], RecordError | None]], bool]]:
        """Rows to stage, ``BATCH`` at a time, each with whether it is the last (which may be empty);
        memory holds one batch."""
        seen_per_wave: Counter[int] = Counter()
        batch: list[tuple[dict[str, Any], RecordError | None]] = []
        for source in sources:
            fmt = FORMATS[source.format]
            mine = steps.get(source.format, [])
            for step in mine:
                step.start_file(source.path)
            options = source.options if source.options is not None else fmt.options()
            for raw in fmt.reader().read(source.path, options):
                for step in mine:
                    step.observe(raw)
                batch.append(self._row(run_id, raw, seen_per_wave))
                result.read[raw.entity] += 1
                if raw.error is not None:
                    result.dead_at_read += 1
                if len(batch) >= BATCH:
                    yield batch, False
                    batch = []
        yield batch, True

    def _row(self, run_id: str, raw: RawRecord, seen_per_wave: Counter[int]) -> tuple[dict[str, Any], RecordError | None]:
        if raw.error is None:
            refused = check_values(raw.entity, raw.fields, self.max_field_chars)
            if refused is not None and refused.field is not None:
                # the record is dead at read: keep what is shown of the value, not megabytes or a NUL
                raw.fields, raw.error = {**raw.fields, refused.field: str(refused.value)}, refused
        entity = self.registry[raw.entity] if raw.entity in self.registry and raw.error is None else None
        known = raw.entity in self.registry
        wave = self.registry.wave_of(raw.entity) if known else 0
        payload, digest_fields = self._protect(raw.fields, misspelled=isinstance(raw.error, UnknownName))
        digest = content_digest(raw.entity, digest_fields)
        if raw.derived:
            payload = {**payload, **raw.derived}
        chunk = -1
        if entity is not None:
            chunk = seen_per_wave[wave] // self.chunk_size
            seen_per_wave[wave] += 1
        key_fields = self.registry[raw.entity].natural_key if known else ()
        natural = natural_key_text(raw.fields, key_fields) if any(raw.fields.get(f) for f in key_fields) else None
        row = {
            "run_id": run_id, "dispatch_id": run_id, "entity": raw.entity, "wave": wave, "chunk": chunk,
            "source_file": raw.position.file, "line": raw.position.line, "col": raw.position.column,
            "digest": digest, "key": idempotency_key(digest, 1), "natural_key": natural if raw.error is None else None,
            "payload": payload, "status": "pending" if raw.error is None else "dead", "attempts": 0,
        }
        if raw.error is not None and known:
            row["_ref_key"] = natural_key_text(raw.fields, self.registry[raw.entity].lookup_key)
        return row, raw.error

    def _is_secret(self, name: str, misspelled: bool) -> bool:
        """A secret field, or — on a record refused for an unknown name — a name close to one
        (``CardNumbr``), whose value is a secret all the same."""
        folded = name.casefold()
        return folded in self.secret_names or (misspelled and bool(get_close_matches(folded, self.secret_names, 1, 0.8)))

    def _may_hold_secrets(self, names: tuple[str, ...]) -> bool:
        """Whether any of these field names is a secret's, remembered per set of names: the records
        of a file mostly repeat a handful of them."""
        known = self._names_with_secrets.get(names)
        if known is None:
            known = any(name.casefold() in self.secret_names for name in names)
            if len(self._names_with_secrets) < NAME_SETS_REMEMBERED:
                self._names_with_secrets[names] = known
        return known

    def _protect(self, fields: dict[str, str], misspelled: bool = False) -> tuple[dict[str, str], dict[str, str]]:
        """Secrets are encrypted for the payload and replaced by a keyed digest for the content hash."""
        if not misspelled and not self._may_hold_secrets(tuple(fields)):
            return fields, fields  # the per-record path: one lookup a record, no fuzzy matching
        if not any(self._is_secret(name, misspelled) for name in fields):
            return fields, fields
        payload, digest_fields = dict(fields), dict(fields)
        for name, value in fields.items():
            if self._is_secret(name, misspelled):
                payload[name] = self.vault.encrypt(value)
                digest_fields[name] = self.vault.digest(value)
        return payload, digest_fields

    def _write(self, session: Session, run_id: str, batch: list[tuple[dict[str, Any], RecordError | None]]) -> None:
        rows = [row if error is None else {k: v for k, v in row.items() if not k.startswith("_")} for row, error in batch]
        if not rows:
            return
        dialect = dialect_of(session)
        if all(error is None for _, error in batch):  # no dead letter to point at a row: no ids needed
            dialect.append_rows(session, table_of(StagedRecord), rows)
            return
        ids = dialect.insert_ids(session, table_of(StagedRecord), rows)
        letters = [
            self._read_letter(record_id, row, error)
            for record_id, (row, error) in zip(ids, batch, strict=True) if error is not None
        ]
        if letters:
            session.execute(insert(DeadLetter), letters)

    def _read_letter(self, record_id: int, row: dict[str, Any], error: RecordError) -> dict[str, Any]:
        value = error.value
        if error.field and self._is_secret(error.field, misspelled=isinstance(error, UnknownName)):
            value = SECRET_MASK
        return {
            "record_id": record_id, "run_id": row["run_id"], "entity": row["entity"], "wave": row["wave"],
            "outcome": "dead", "stage": "read", "state": "open", "error_class": error.error_class,
            "message": error.message, "field": error.field, "value": None if value is None else str(value),
            "hint": error.hint, "ref_key": row.get("_ref_key"), "source_file": row["source_file"],
            "line": row["line"], "col": row["col"], "attempts": 0,
        }

    # -- settling what depends on file order ------------------------------------------------------

    def _number_repeats(self, session: Session, run_id: str) -> None:
        """Give the n-th record with the same content the n-th key. Every record was staged with its
        content's first key (``_row``), so records sharing content share a key until now, and the
        key's index finds them: no index on the digest is written while staging."""
        repeated = session.scalars(
            select(StagedRecord.key).where(StagedRecord.run_id == run_id)
            .group_by(StagedRecord.key).having(func.count() > 1)
        ).all()
        for first_key in repeated:
            rows = session.execute(select(StagedRecord.id, StagedRecord.digest)
                                   .where(StagedRecord.key == first_key, StagedRecord.run_id == run_id)
                                   .order_by(StagedRecord.id)).all()
            for occurrence, (record_id, digest) in enumerate(rows[1:], start=2):
                session.execute(update(StagedRecord).where(StagedRecord.id == record_id)
                                .values(key=idempotency_key(digest, occurrence)))

    def _settle_duplicate_keys(self, session: Session, run_id: str) -> None:
        """Same natural key twice in one run: the earlier record wins, whatever order workers run in."""
        groups = session.execute(
            select(StagedRecord.entity, StagedRecord.natural_key)
            .where(StagedRecord.run_id == run_id, StagedRecord.status == "pending", StagedRecord.natural_key.is_not(None))
            .group_by(StagedRecord.entity, StagedRecord.natural_key).having(func.count() > 1)
        ).all()
        for entity, natural_or_none in groups:
            natural = str(natural_or_none)
            records = session.scalars(
                select(StagedRecord).where(StagedRecord.run_id == run_id, StagedRecord.entity == entity,
                                           StagedRecord.natural_key == natural, StagedRecord.status == "pending")
                .order_by(StagedRecord.id)
            ).all()
            first = records[0]
            for later in records[1:]:
                row = {"run_id": run_id, "entity": entity, "key": later.key, "source_file": later.source_file,
                       "line": later.line, "col": later.col}
                if later.digest == first.digest:
                    later.status = "skipped"
                    _log_outcome(row, "skipped", None, f"repeats {first.source_file}:{first.line}")
                    continue
                later.status = "dead"
                names = "+".join(self.registry[entity].natural_key)
                error = Conflict(
                    f"{entity} with {names} {show_key(natural)!r} appears earlier in the run with different content "
                    f"({first.source_file}:{first.line}); the earlier record wins",
                    field=self.registry[entity].natural_key[-1], value=show_key(natural),
                    hint="remove one of the two, or load the later one on its own with --upsert",
                )
                letter = self._read_letter(later.id, {
                    "run_id": run_id, "entity": entity, "wave": later.wave, "source_file": later.source_file,
                    "line": later.line, "col": later.col,
                    "_ref_key": natural_key_text(later.payload, self.registry[entity].lookup_key),
                }, error)
                letter["stage"] = "load"
                session.add(DeadLetter(**letter))
                _log_outcome(row, "dead", error, "at staging")

    def _write_dispatch_plan(self, session: Session, run_id: str, result: StagingResult) -> None:
        for entity, count in result.read.items():
            wave = self.registry.wave_of(entity) if entity in self.registry else 0
            session.add(RunEntity(run_id=run_id, entity=entity, wave=wave, read=count))
        write_dispatch_waves(session, run_id)


def undo_staging(session: Session, run_id: str, state: str, message: str) -> None:
    """Remove what staging wrote for a run (nothing of it was published) and keep only the run, in
    ``state`` with ``message``: a refused run, or one abandoned while staging and then discarded."""
    session.execute(delete(DeadLetter).where(DeadLetter.run_id == run_id))
    session.execute(delete(InvoicePlan).where(InvoicePlan.run_id == run_id))
    session.execute(delete(SourceTotal).where(SourceTotal.run_id == run_id))
    session.execute(delete(StagedRecord).where(StagedRecord.run_id == run_id))
    session.execute(delete(RunEntity).where(RunEntity.run_id == run_id))
    run = session.get_one(Run, run_id)
    run.state, run.message, run.owner = state, message, None


def _log_read_failures(session: Session, run_id: str) -> None:
    """A line per record refused at read, once its key is final (repeats are numbered)."""
    if not log.isEnabledFor(logging.INFO):
        return
    query = (select(StagedRecord.entity, StagedRecord.key, StagedRecord.source_file, StagedRecord.line, StagedRecord.col,
                    DeadLetter.error_class, DeadLetter.message)
             .join(DeadLetter, DeadLetter.record_id == StagedRecord.id)
             .where(StagedRecord.run_id == run_id, DeadLetter.stage == "read").order_by(StagedRecord.id))
    for entity, key, source_file, line, col, error_class, message in session.execute(query):
        row = {"run_id": run_id, "entity": entity, "key": key, "source_file": source_file, "line": line, "col": col}
        _log_outcome(row, "dead", None, f"at read: {message}", error_class)


def _log_outcome(row: dict[str, Any], outcome: str, error: RecordError | None, when: str,
                 error_class: str | None = None) -> None:
    """One line per record whose outcome the producer settles itself (never its values: they may be secret)."""
    if not log.isEnabledFor(logging.INFO):
        return
    position = str(Position(row["source_file"], row["line"], row["col"]))
    log.info("%s (%s) %s %s%s", row["entity"], position, outcome, when, f": {error}" if error else "",
             extra={"run_id": row["run_id"], "entity": row["entity"], "record_key": row["key"], "position": position,
                    "outcome": outcome, "error_class": error.error_class if error else error_class})


def staging_steps(sources: list[SourceFile]) -> dict[str, list[StagingStep]]:
    """One of each staging step of every format among the sources, made with that format's options."""
    steps: dict[str, list[StagingStep]] = {}
    for source in sources:
        if source.format not in steps:
            fmt = FORMATS[source.format]
            options = source.options if source.options is not None else fmt.options()
            steps[source.format] = [make(options) for make in fmt.steps]
    return steps


def _all(steps: dict[str, list[StagingStep]]) -> list[StagingStep]:
    return [step for mine in steps.values() for step in mine]


def write_dispatch_waves(session: Session, dispatch_id: str) -> None:
    """One DispatchWave per wave that has chunks to publish, sized from the staged rows."""
    for wave, last_chunk in session.execute(
        select(StagedRecord.wave, func.max(StagedRecord.chunk))
        .where(StagedRecord.dispatch_id == dispatch_id, StagedRecord.chunk >= 0)
        .group_by(StagedRecord.wave)
    ):
        session.add(DispatchWave(dispatch_id=dispatch_id, wave=wave, chunks_total=last_chunk + 1))

