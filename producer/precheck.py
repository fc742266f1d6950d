"""The csv pre-check (the seed's error page before the conversion starts): once the whole file is
staged and before anything loads, sort what is wrong into

* **blocking** — the run is refused, nothing is loaded: an invoice type the profile names is not
  configured (the reader already refused unreadable files and mapped columns missing from the
  header; the profile loader refused unmapped required fields);
* **continuable** — the run goes on: rows whose account number does not exist. Without
  ``--create-missing`` they are dead-lettered when they load (replayable once the account exists);
  with it, the customer account and its owner login are created first.

The summary is printed before loading, and by ``cutover validate``."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from producer.readers.csv_import import ENTITY_OF
from producer.readers.csv_profile import Profile
from producer.steps import StagingStep
from shared.errors import SourceError
from shared.hints import hint_for
from shared.schema.control import StagedRecord
from shared.schema.target import Account, ReferenceItem

if TYPE_CHECKING:
    from producer.formats import CsvOptions

LISTED = 20
_NAMES_PER_QUERY = 1000


@dataclass
class Precheck:
    import_type: str
    rows: Counter[str] = field(default_factory=Counter)
    """Rows by status at staging: pending (to load), dead (refused at read), skipped (repeated)."""
    invoice_types: tuple[str, ...] = ()
    missing: list[str] = field(default_factory=list)
    """Account numbers that do not exist (first LISTED), for the listing."""
    missing_rows: int = 0
    create_missing: bool = False

    def lines(self) -> list[str]:
        out = [f"pre-check ({self.import_type}): {sum(self.rows.values())} row(s): {self.rows['pending']} to load, "
               f"{self.rows['dead']} refused at read, {self.rows['skipped']} repeated"]
        if self.invoice_types:
            out.append(f"  enrols every row on each invoice type: {', '.join(self.invoice_types)}")
        if self.missing_rows:
            fate = ("will be created first (--create-missing)" if self.create_missing else
                    "do not exist: these rows will be dead-lettered (continuable; run with --create-missing to create "
                    "them, or import their registration and replay)")
            shown = ", ".join(self.missing[:LISTED]) + (" …" if self.missing_rows > LISTED else "")
            out.append(f"  {self.missing_rows} row(s) name accounts that {fate}: {shown}")
        else:
            out.append("  no blocking errors; every account number exists" if self.import_type != "registration"
                       else "  no blocking errors")
        return out


class PrecheckStep(StagingStep):
    """csv's staging step: the pre-check, once the whole file is staged; its summary is shown before
    anything loads."""

    options: CsvOptions

    def __init__(self, options: CsvOptions) -> None:
        super().__init__(options)
        self.result: Precheck | None = None

    def settle(self, session: Session, run_id: str) -> None:
        if self.options.mapping is not None:
            self.result = precheck(session, run_id, self.options.mapping, self.options.create_missing)

    def summary(self) -> list[str]:
        return self.result.lines() if self.result else []


def precheck(session: Session, run_id: str, profile: Profile, create_missing: bool) -> Precheck:
    """Raises SourceError (blocking) or returns the continuable findings."""
    entity = ENTITY_OF[profile.import_type]
    result = Precheck(profile.import_type, invoice_types=profile.invoice_types, create_missing=create_missing)
    for status, count in session.execute(select(StagedRecord.status, func.count())
                                         .where(StagedRecord.run_id == run_id, StagedRecord.entity == entity)
                                         .group_by(StagedRecord.status)):
        result.rows[status] = count
    _refuse_unknown_invoice_types(session, run_id, profile)
    if entity != "Registration":
        _find_missing_accounts(session, run_id, entity, result)
    return result


def _refuse_unknown_invoice_types(session: Session, run_id: str, profile: Profile) -> None:
    if not profile.invoice_types:
        return
    known = set(session.scalars(select(ReferenceItem.name).where(ReferenceItem.kind == "InvoiceType")))
    known.update(str(p.get("Name")) for p in session.scalars(
        select(StagedRecord.payload).where(StagedRecord.run_id == run_id, StagedRecord.entity == "InvoiceType",
                                           StagedRecord.status == "pending")))
    unknown = [t for t in profile.invoice_types if t not in known]
    if unknown:
        near = hint_for(unknown[0], known)
        configured = f"configured: {', '.join(sorted(known))}" if known else "no InvoiceType is configured"
        raise SourceError(profile.path, None, f"invoice type {unknown[0]!r} is not configured "
                                              f"({near or configured}); nothing was loaded")


def _find_missing_accounts(session: Session, run_id: str, entity: str, result: Precheck) -> None:
    rows = Counter(str(p.get("account_number")) for p in session.scalars(
        select(StagedRecord.payload).where(StagedRecord.run_id == run_id, StagedRecord.entity == entity,
                                           StagedRecord.status == "pending")))
    registered = {str(p.get("account_number")) for p in session.scalars(
        select(StagedRecord.payload).where(StagedRecord.run_id == run_id, StagedRecord.entity == "Registration",
                                           StagedRecord.status == "pending"))}
    wanted = sorted(set(rows) - registered)
    existing: set[str] = set()
    for start in range(0, len(wanted), _NAMES_PER_QUERY):
        batch = wanted[start:start + _NAMES_PER_QUERY]
        existing.update(session.scalars(select(Account.name).where(Account.name.in_(batch))))
    missing = [number for number in wanted if number not in existing]
    result.missing = missing[:LISTED]
    result.missing_rows = sum(rows[n] for n in missing)
