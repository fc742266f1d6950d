"""`cutover reconcile RUN`: what the source said against what the target holds.

The source side was summed by the producer while reading (``source_totals``: debits, credits,
stated taxes and payments per account). The target side is summed from the rows the run's records
made (ledger lines and payments, found by their idempotency keys). Records that are dead-lettered or
blocked explain their own share; anything else that differs is listed, down to the rows that
disagree with their source record. Counts per entity must also add up, and every committed ledger
record must still have its row.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from shared.dialects import dialect_of
from shared.dispatch import OUTCOMES, live_counts
from shared.errors import ConfigError
from shared.money import INVOICE_LINES, METRICS, MONEY_RECORDS, TAX_SLOTS, ZERO, Figures, source_figures
from shared.schema.control import DeadLetter, Run, SourceTotal, StagedRecord
from shared.schema.ledger import Payment, Transaction
from shared.schema.subscriptions import CustomerOverride, CustomerPayment
from shared.schema.target import Account

LOADED = ("committed", "skipped")
ROWS_LISTED = 20


@dataclass
class Difference:
    account: str
    metric: str
    source: Decimal
    parked: Decimal
    found: Decimal

    @property
    def expected(self) -> Decimal:
        return self.source - self.parked

    def text(self) -> str:
        parked = f" − {self.parked} parked" if self.parked else ""
        return (f"account {self.account!r} {self.metric}: source {self.source}{parked} = {self.expected} expected, "
                f"target has {self.found} (off by {self.found - self.expected})")


@dataclass
class Reconciliation:
    run_id: str
    accounts: int = 0
    source: Figures = field(default_factory=Figures)
    parked: Figures = field(default_factory=Figures)
    found: Figures = field(default_factory=Figures)
    ignored_tax: Decimal = ZERO
    computed_tax: Decimal = ZERO
    differences: list[Difference] = field(default_factory=list)
    rows: list[str] = field(default_factory=list)
    """Rows that disagree with their source record, or are missing."""
    counts: list[str] = field(default_factory=list)
    """Entities whose read count is not committed + skipped + dead + blocked."""
    pending: int = 0
    refused_at_read: int = 0
    """Money records the reader refused: in no total on either side, but dead letters to act on."""
    rows_found: Counter[str] = field(default_factory=Counter, repr=False)
    """Target rows found per table for the run's loaded keys, as the money is summed."""

    @property
    def reconciled(self) -> bool:
        return not (self.differences or self.rows or self.counts or self.pending)

    def as_dict(self) -> dict[str, Any]:
        def money(f: Figures) -> dict[str, str]:
            return {k: str(v) for k, v in f.as_dict().items()}
        return {
            "run_id": self.run_id, "reconciled": self.reconciled, "accounts": self.accounts,
            "source": money(self.source), "parked": money(self.parked), "target": money(self.found),
            "ignored_tax": str(self.ignored_tax), "computed_tax": str(self.computed_tax),
            "differences": [{"account": d.account, "metric": d.metric, "source": str(d.source), "parked": str(d.parked),
                             "expected": str(d.expected), "found": str(d.found)} for d in self.differences],
            "rows": self.rows, "counts": self.counts, "pending": self.pending, "refused_at_read": self.refused_at_read,
        }

    def lines(self) -> Iterator[str]:
        """The verdict for people, with every difference."""
        if self.reconciled and not self.accounts:
            yield "reconciled: no ledger money in this run; every record read is accounted for"
        elif self.reconciled:
            parked = "" if self.parked == Figures() else (
                f"; parked in dead letters: {', '.join(f'{k} {v}' for k, v in self.parked.as_dict().items() if v)}")
            yield (f"reconciled: {self.accounts} account(s), debits {self.found.debits}, credits {self.found.credits}, "
                   f"taxes {self.found.taxes}, payments {self.found.payments} as the source says{parked}")
        else:
            yield f"NOT reconciled: {len(self.differences)} money difference(s), {len(self.rows)} row(s), " \
                  f"{len(self.counts)} count(s) off" + (f", {self.pending} record(s) still loading" if self.pending else "")
        if self.refused_at_read:
            yield (f"note: {self.refused_at_read} ledger record(s) were refused while reading and are in no total: "
                   f"fix them in the file (cutover dlq list --run {self.run_id})")
        if self.ignored_tax:
            yield (f"note: taxes of {self.ignored_tax} stated by the source were ignored: their TaxCode has no rate for "
                   "that slot (engageip keeps a stated tax only where the TaxCode has a rate)")
        if self.computed_tax:
            yield f"note: taxes of {self.computed_tax} were computed by ApplyTax (not stated by the source)"
        yield from self.counts
        for difference in self.differences:
            yield difference.text()
        yield from self.rows


def reconcile(session: Session, run_id: str) -> Reconciliation:
    run = session.get(Run, run_id)
    if run is None or run.kind != "run":
        raise ConfigError(f"no run {run_id!r} to reconcile (replays are reconciled through the run they replay)")
    result = Reconciliation(run_id)
    _check_counts(session, run_id, result)
    for account, (s, p, f) in _per_account(session, run_id, result):
        result.accounts += s is not None
        s, p, f = s or Figures(), p or Figures(), f or Figures()
        result.source, result.parked, result.found = result.source + s, result.parked + p, result.found + f
        for metric in METRICS:
            sv, pv, fv = getattr(s, metric), getattr(p, metric), getattr(f, metric)
            if sv - pv != fv:
                result.differences.append(Difference(account, metric, sv, pv, fv))
    _check_rows(session, run_id, {d.account for d in result.differences}, result)
    result.refused_at_read = session.scalar(
        select(func.count()).select_from(DeadLetter)
        .where(DeadLetter.run_id == run_id, DeadLetter.stage == "read", DeadLetter.entity.in_(MONEY_RECORDS))) or 0
    return result


SOURCE, PARKED, FOUND = range(3)
Sides = tuple[Figures | None, Figures | None, Figures | None]


def _per_account(session: Session, run_id: str, result: Reconciliation) -> Iterator[tuple[str, Sides]]:
    """Each account's source, parked and target money, one account at a time, in code-point order of
    its name: every side is read from the database sorted that way and merged as it streams, so
    memory holds one account (and the parked records), not every account of a million-record ledger."""
    streams = [_source(session, run_id), _sorted_dict(PARKED, _parked(session, run_id)), _target(session, run_id, result)]
    merged = heapq.merge(*streams, key=lambda side: side[0])
    for account, sides in itertools.groupby(merged, key=lambda side: side[0]):
        figures: list[Figures | None] = [None, None, None]
        for _, kind, amount in sides:
            figures[kind] = amount if figures[kind] is None else figures[kind] + amount  # type: ignore[operator]
        yield account, (figures[SOURCE], figures[PARKED], figures[FOUND])


Side = tuple[str, int, Figures]
STREAMED = 1000
"""Rows fetched at a time from each side's query."""


def _source(session: Session, run_id: str) -> Iterator[Side]:
    name = dialect_of(session).in_code_point_order(SourceTotal.account)
    for account, debits, credits, taxes, payments in session.execute(
        select(SourceTotal.account, SourceTotal.debits, SourceTotal.credits, SourceTotal.taxes, SourceTotal.payments)
        .where(SourceTotal.run_id == run_id).order_by(name).execution_options(yield_per=STREAMED)
    ):
        yield account, SOURCE, Figures(debits, credits, taxes, payments)


def _sorted_dict(kind: int, figures: dict[str, Figures]) -> Iterator[Side]:
    for account in sorted(figures):
        yield account, kind, figures[account]


def _check_counts(session: Session, run_id: str, result: Reconciliation) -> None:
    for entity, c in sorted(live_counts(session, run_id).items()):
        result.pending += c["pending"]
        done = sum(c[o] for o in OUTCOMES)
        if c["read"] != done + c["pending"]:
            result.counts.append(f"{entity}: read {c['read']} but {done} accounted for "
                                 f"({', '.join(f'{o} {c[o]}' for o in OUTCOMES)})")


def _ledger_records(run_id: str, statuses: tuple[str, ...]) -> Any:
    return select(StagedRecord).where(StagedRecord.run_id == run_id, StagedRecord.status.in_(statuses),
                                      StagedRecord.entity.in_(MONEY_RECORDS))


def _parked(session: Session, run_id: str) -> dict[str, Figures]:
    """Money of records that were read but wait in the dead-letter store (not those refused at read:
    the source totals never counted them)."""
    out: dict[str, Figures] = {}
    read_stage = select(DeadLetter.record_id).where(DeadLetter.run_id == run_id, DeadLetter.stage == "read")
    for record in session.scalars(_ledger_records(run_id, ("dead", "blocked")).where(StagedRecord.id.not_in(read_stage))):
        account = record.payload.get("User", "")
        out[account] = out.get(account, Figures()) + source_figures(record.entity, record.payload)
    return out


def _loaded_keys(run_id: str, entities: tuple[str, ...]) -> Any:
    return select(StagedRecord.key).where(StagedRecord.run_id == run_id, StagedRecord.status.in_(LOADED),
                                          StagedRecord.entity.in_(entities))


def _target(session: Session, run_id: str, result: Reconciliation) -> Iterator[Side]:
    """What the target holds per account for the run's loaded ledger lines and payments, in
    code-point order of the account's name (an account may come more than once: added up by the caller).
    Rows are summed per account id first and only those sums are joined to names and sorted: a million
    records' lines are never sorted by name. How many rows were found is kept for :func:`_check_rows`."""
    name = dialect_of(session).in_code_point_order(Account.name)
    taxes = [func.sum(getattr(Transaction, f"tax{i}")).label(f"tax{i}") for i in TAX_SLOTS]
    line_sums = (
        select(Transaction.account_id, Transaction.tax_applied, func.count().label("found"),
               func.sum(Transaction.debit).label("debits"), func.sum(Transaction.credit).label("credits"),
               func.sum(Transaction.ignored_tax).label("ignored"), *taxes)
        .where(Transaction.source_key.in_(_loaded_keys(run_id, INVOICE_LINES)))
        .group_by(Transaction.account_id, Transaction.tax_applied).subquery()
    )
    lines = session.execute(
        select(Account.name, line_sums.c.found, line_sums.c.tax_applied, line_sums.c.debits, line_sums.c.credits,
               line_sums.c.ignored, *(line_sums.c[f"tax{i}"] for i in TAX_SLOTS))
        .join(line_sums, line_sums.c.account_id == Account.id).order_by(name).execution_options(yield_per=STREAMED)
    )
    payment_sums = (
        select(Payment.account_id, func.count().label("found"), func.sum(Payment.amount).label("paid"))
        .where(Payment.source_key.in_(_loaded_keys(run_id, ("Payment",)))).group_by(Payment.account_id).subquery()
    )
    payments = session.execute(
        select(Account.name, payment_sums.c.found, payment_sums.c.paid)
        .join(payment_sums, payment_sums.c.account_id == Account.id).order_by(name).execution_options(yield_per=STREAMED)
    )
    yield from heapq.merge(_line_sums(lines, result), _payment_sums(payments, result), key=lambda side: side[0])


def _line_sums(rows: Iterable[Any], result: Reconciliation) -> Iterator[Side]:
    for account, found, applied, debits, credits, ignored, *slots in rows:
        result.rows_found[Transaction.__tablename__] += found
        slot_total = sum((s or ZERO for s in slots), ZERO)
        stated = (ignored or ZERO) + (ZERO if applied else slot_total)
        if applied:
            result.computed_tax += slot_total
        result.ignored_tax += ignored or ZERO
        yield account, FOUND, Figures(debits or ZERO, credits or ZERO, stated)


def _payment_sums(rows: Iterable[Any], result: Reconciliation) -> Iterator[Side]:
    for account, found, paid in rows:
        result.rows_found[Payment.__tablename__] += found
        yield account, FOUND, Figures(payments=paid or ZERO)


def _row_figures(row: Transaction | Payment) -> Figures:
    if isinstance(row, Payment):
        return Figures(payments=row.amount)
    stated = row.ignored_tax + (ZERO if row.tax_applied else sum((getattr(row, f"tax{i}") for i in TAX_SLOTS), ZERO))
    return Figures(row.debit, row.credit, stated)


def _check_rows(session: Session, run_id: str, accounts: set[str], result: Reconciliation) -> None:
    """Every loaded ledger record still has its row; for accounts that differ, name the rows."""
    missing = _missing_rows(session, run_id, result.rows_found)
    for record in missing[:ROWS_LISTED]:
        result.rows.append(f"{record.source_file}:{record.line} {record.entity} ({record.status}): its row is missing "
                           "from the target")
    if len(missing) > ROWS_LISTED:
        result.rows.append("… and more missing rows")
    if not accounts:
        return
    listed = 0
    for record in session.scalars(_ledger_records(run_id, LOADED).order_by(StagedRecord.id)).yield_per(1000):
        if record.payload.get("User") not in accounts:
            continue
        row: Transaction | Payment | None = (
            session.scalars(select(Payment).where(Payment.source_key == record.key)).first() if record.entity == "Payment"
            else session.scalars(select(Transaction).where(Transaction.source_key == record.key)).first())
        if row is None:
            continue
        said, holds = source_figures(record.entity, record.payload), _row_figures(row)
        if said != holds and listed < ROWS_LISTED:
            listed += 1
            wrong = ", ".join(f"{m} source {getattr(said, m)}, target {getattr(holds, m)}" for m in METRICS
                              if getattr(said, m) != getattr(holds, m))
            result.rows.append(f"{record.source_file}:{record.line} {record.entity} → {row.__tablename__} #{row.id}: {wrong}")


ROW_MODELS: tuple[tuple[Any, tuple[str, ...]], ...] = (
    (Transaction, INVOICE_LINES), (Payment, ("Payment",)),
    (CustomerPayment, ("CustomerPayment",)), (CustomerOverride, ("CustomerOverride",)),
)
"""The target tables whose rows carry a record's key (``source_key``, unique), with their records."""


def _missing_rows(session: Session, run_id: str, found: Counter[str]) -> list[StagedRecord]:
    """Loaded records whose row is gone. A table whose rows :func:`_target` counted as many as the
    run's loaded records misses none (each record has a key of its own, and ``source_key`` is unique),
    so it is not searched row by row: an anti-join over every loaded record takes seconds at a million
    records. Should two records ever share a key, the counts differ and the search runs."""
    every = [entity for _, entities in ROW_MODELS for entity in entities]
    loaded = dict(session.execute(
        select(StagedRecord.entity, func.count())
        .where(StagedRecord.run_id == run_id, StagedRecord.status.in_(LOADED), StagedRecord.entity.in_(every))
        .group_by(StagedRecord.entity)).tuples().all())
    out: list[StagedRecord] = []
    for model, entities in ROW_MODELS:
        keys = sum(loaded.get(entity, 0) for entity in entities)
        if not keys or (model.__tablename__ in found and found[model.__tablename__] == keys):
            continue
        has_row: ColumnElement[bool] = select(model.id).where(model.source_key == StagedRecord.key).exists()
        out.extend(session.scalars(
            select(StagedRecord).where(StagedRecord.run_id == run_id, StagedRecord.status.in_(LOADED),
                                       StagedRecord.entity.in_(entities), ~has_row).order_by(StagedRecord.id)
            .limit(ROWS_LISTED + 1)))
    return out
