"""`cutover validate`: everything a run would check — names, values, duplicates, references against
the target and against earlier records of the same files, business rules — without writing to the
target. The records are staged and loaded inline, in wave order, inside one transaction on the
target database that is rolled back at the end."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from ops.backends import database
from ops.runs import ready_sources
from producer.staging import Stager
from shared.db import engine_for
from shared.dialects import DRY_RUN
from shared.entities import REGISTRY
from shared.envelope import Envelope
from shared.errors import Position
from shared.schema.control import DeadLetter, StagedRecord
from shared.settings import Settings
from shared.vault import Vault
from workers.batch import load_batch
from workers.loaders import load_all
from workers.process import as_loaders


@dataclass
class Finding:
    position: str
    entity: str
    outcome: str
    error_class: str
    message: str


@dataclass
class ValidationReport:
    records: int = 0
    findings: list[Finding] = field(default_factory=list)
    precheck: list[str] = field(default_factory=list)


def validate(settings: Settings, paths: list[Path], format_name: str | None = None,
             format_options: dict[str, Any] | None = None) -> ValidationReport:
    """``format_options``: the formats' own options by name, as for `cutover run`. Raises SourceError
    for a file that cannot be read at all."""
    logging.getLogger("cutover.worker").setLevel(logging.ERROR)  # findings are the report, not log lines
    database(settings)
    vault, loaders = Vault.from_settings(settings), as_loaders(load_all())
    with engine_for(settings.effective_database_url).connect() as conn:
        outer = conn.begin()
        try:
            sf = sessionmaker(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False,
                              info={DRY_RUN: True})
            sources = ready_sources(settings, sf, paths, format_name, format_options or {}, loads=False)
            staged = Stager(sf, REGISTRY, vault, settings.chunk_size, settings.max_field_chars).stage(sources, {"validate": True})
            run_id = staged.run_id
            with sf() as session:
                pending = session.execute(
                    select(StagedRecord).where(StagedRecord.run_id == run_id, StagedRecord.status == "pending")
                    .order_by(StagedRecord.wave, StagedRecord.entity, StagedRecord.id)
                ).scalars().all()
                envelopes = [Envelope(run_id, r.id, r.entity, r.key, r.digest, Position(r.source_file, r.line, r.col),
                                      r.payload) for r in pending]
                waves = {r.id: r.wave for r in pending}
            for (_, entity), group in groupby(envelopes, key=lambda e: (waves[e.record_id], e.entity)):
                records = list(group)
                load_batch(sf, REGISTRY, vault, loaders, REGISTRY[entity], records, {e.record_id: 1 for e in records})
            report = ValidationReport(records=sum(staged.read.values()), precheck=staged.precheck)
            with sf() as session:
                for letter in session.scalars(select(DeadLetter).where(DeadLetter.run_id == run_id)
                                              .order_by(DeadLetter.source_file, DeadLetter.line)):
                    message = letter.message + (f" — {letter.hint}" if letter.hint else "")
                    report.findings.append(Finding(f"{letter.source_file}:{letter.line}", letter.entity, letter.outcome,
                                                   letter.error_class, message))
            return report
        finally:
            outer.rollback()
