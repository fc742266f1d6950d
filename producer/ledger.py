"""Invoices from file order, settled by the producer so no worker depends on message order.

The engageip ledger says which invoice a line belongs to only by position: every ``Debit`` and
``Credit`` goes on its account's open invoice, and a ``CloseInvoice`` closes it (with ``User``, that
account's; without, every account that got a line since the previous close in the same file). While
reading, :class:`InvoicePlanner` turns that into *invoice plans*: each line and close carries the
number of its plan, and the plan says which account, whether it is closed and printed, and its name.
After reading, :func:`resolve_plans` gives every plan its sequence number against what the target
already holds. The producer also sums, per account, the money the source states: the source side
of `cutover reconcile`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from producer.readers.base import RawRecord
from producer.readers.values import MONEY_LIMIT
from producer.steps import StagingStep, StepWrite
from shared.dialects import dialect_of, table_of
from shared.errors import InvalidValue, RecordError, RuleViolation
from shared.money import INVOICE_LINES, LEDGER_ENTITIES, MONEY_RECORDS, Figures, source_figures
from shared.schema.control import InvoicePlan, LedgerEntry, SourceTotal, StagedRecord
from shared.schema.ledger import Invoice, Transaction
from shared.schema.target import Account

CHARGES = ("Debit", "Credit")
PLAN_FIELD = "_plan"
CLOSE_FIELD = "_close"
PLANS_AT_ONCE = 5000
"""Invoice plans read and updated this many at a time when their sequences are settled."""


@dataclass
class Plan:
    """An invoice being assembled while reading."""

    plan: int
    account: str
    source_file: str
    line: int | None
    name: str | None = None
    closed: bool = False
    printed: bool = False
    opening: bool = False
    close_no: int | None = None

    def row(self, run_id: str) -> dict[str, object]:
        return {"run_id": run_id, "plan": self.plan, "account": self.account, "name": self.name, "closed": self.closed,
                "printed": self.printed, "opening": self.opening, "close_no": self.close_no,
                "source_file": self.source_file, "line": self.line}


@dataclass
class InvoicePlanner:
    """Follows ledger records in file order. Memory grows with the accounts that have an open invoice
    and with the accounts whose money is not flushed yet (one batch), not with the number of lines."""

    next_plan: int = 0
    closes: int = 0
    open: dict[str, Plan] = field(default_factory=dict)
    touched: dict[str, None] = field(default_factory=dict)
    """Accounts that got a line since the previous bare CloseInvoice of this file, in order."""
    finished: list[Plan] = field(default_factory=list)
    totals: dict[str, Figures] = field(default_factory=dict)

    def start_file(self) -> None:
        """A bare CloseInvoice closes what its own file touched; open invoices stay open across files."""
        self.touched.clear()

    def observe(self, raw: RawRecord) -> None:
        """Annotate one record (``raw.derived``) or give it its read-time error."""
        if raw.error is not None or raw.entity not in LEDGER_ENTITIES:
            return
        try:
            _check_rules(raw)
            if raw.entity in CHARGES:
                self._line(raw)
            elif raw.entity == "OpeningBalance":
                self._opening_balance(raw)
            elif raw.entity == "CloseInvoice":
                self._close(raw)
        except RecordError as error:
            raw.error = error
            return
        if raw.entity in MONEY_RECORDS:
            account = raw.fields["User"]
            self.totals[account] = self.totals.get(account, Figures()) + source_figures(raw.entity, raw.fields)

    def _open_plan(self, raw: RawRecord) -> Plan:
        account = raw.fields["User"]
        plan = self.open.get(account)
        if plan is None:
            self.next_plan += 1
            plan = self.open[account] = Plan(self.next_plan, account, raw.position.file, raw.position.line)
        return plan

    def _line(self, raw: RawRecord) -> None:
        plan = self._open_plan(raw)
        self.touched[plan.account] = None
        raw.derived[PLAN_FIELD] = str(plan.plan)

    def _opening_balance(self, raw: RawRecord) -> None:
        """The seed's procedure: the amount goes on the open invoice (a new one if none is open),
        which is then closed and marked printed, so it is never sent to the customer."""
        plan = self._open_plan(raw)
        plan.opening = plan.closed = plan.printed = True
        raw.derived[PLAN_FIELD] = str(plan.plan)
        self._finish([plan], close_no=None)

    def _close(self, raw: RawRecord) -> None:
        user, name = raw.fields.get("User"), raw.fields.get("Name")
        if user:
            plan = self.open.get(user)
            if plan is None:
                raise RuleViolation(f"CloseInvoice for {user!r} closes nothing: no Debit or Credit for that account since "
                                    "its previous close", field="User", value=user,
                                    hint="remove the record, or check the account name (names are case-sensitive)")
            plans = [plan]
        else:
            plans = [self.open[a] for a in self.touched if a in self.open]
            if not plans:
                raise RuleViolation("CloseInvoice closes nothing: no Debit or Credit since the previous CloseInvoice "
                                    "in this file", field="CloseInvoice", value=raw.fields.get("CloseInvoice", ""),
                                    hint="remove the record")
            if name and len(plans) > 1:
                raise InvalidValue(f"CloseInvoice Name {name!r} would name {len(plans)} invoices "
                                   f"({', '.join(p.account for p in plans[:5])}…)", field="Name", value=name,
                                   hint="give User with Name, to name one account's invoice")
        self.closes += 1
        for plan in plans:
            plan.closed = True
            plan.printed = raw.fields.get("Printed") == "true"
            plan.name = name or plan.name
        raw.derived[CLOSE_FIELD] = str(self.closes)
        if user:
            raw.derived[PLAN_FIELD] = str(plans[0].plan)
        self._finish(plans, close_no=self.closes)

    def _finish(self, plans: list[Plan], close_no: int | None) -> None:
        for plan in plans:
            plan.close_no = close_no
            self.open.pop(plan.account, None)
            self.touched.pop(plan.account, None)
        self.finished.extend(plans)

    def drain(self, final: bool = False) -> list[Plan]:
        """Plans ready to be written: the closed ones, and at the end the ones left open."""
        out, self.finished = self.finished, []
        if final:
            out.extend(self.open.values())
            self.open.clear()
        return out


class LedgerStep(StagingStep):
    """engageip's staging step: invoice plans while reading, written with each batch; the source's
    money per account at the end; sequence numbers against the target once reading is over."""

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self.planner = InvoicePlanner()
        self.written: set[str] = set()
        """Accounts whose source totals have a row already."""

    def start_file(self, path: Path) -> None:
        self.planner.start_file()

    def observe(self, raw: RawRecord) -> None:
        self.planner.observe(raw)

    def flush(self, final: bool) -> StepWrite | None:
        """The batch's finished plans, and its money per account added to the source totals: a
        million-record ledger's totals are never all in memory (only the names already written)."""
        plans = self.planner.drain(final=final)
        totals, self.planner.totals = self.planner.totals, {}
        if not plans and not totals:
            return None
        new = {account: figures for account, figures in totals.items() if account not in self.written}
        more = {account: figures for account, figures in totals.items() if account in self.written}
        self.written.update(new)

        def write(session: Session, run_id: str) -> None:
            write_plans(session, run_id, plans)
            write_totals(session, run_id, new)
            add_to_totals(session, run_id, more)
        return write

    def settle(self, session: Session, run_id: str) -> None:
        resolve_plans(session, run_id)


def _check_rules(raw: RawRecord) -> None:
    fields = raw.fields
    bulk = fields.get("Bulk")
    if bulk is not None and Decimal(bulk) <= 0:
        raise InvalidValue(f"Bulk {bulk} must be more than 0", field="Bulk", value=bulk,
                           hint="Bulk multiplies the Credit amount (default 1)")
    if bulk is not None and Decimal(fields.get("Credit", "0")) * Decimal(bulk) >= MONEY_LIMIT:
        raise InvalidValue(f"Credit × Bulk ({fields.get('Credit')} × {bulk}) is too large for an amount", field="Bulk",
                           value=bulk, hint=f"amounts must be below {MONEY_LIMIT:,.0f}")
    start, end = fields.get("PeriodStart"), fields.get("PeriodEnd")
    if start and end and datetime.fromisoformat(start) > _end_of(end):
        raise InvalidValue(f"PeriodStart {start} is after PeriodEnd {end}", field="PeriodEnd", value=end,
                           hint="a service period starts on or before its end")


def _end_of(text: str) -> datetime:
    """A date without a time ends at the end of that day."""
    moment = datetime.fromisoformat(text)
    return moment.replace(hour=23, minute=59, second=59) if "T" not in text else moment


def write_plans(session: Session, run_id: str, plans: list[Plan]) -> None:
    """The batch's finished plans, by the database's bulk path (``COPY`` on PostgreSQL)."""
    dialect_of(session).insert(session, table_of(InvoicePlan), [p.row(run_id) for p in plans])


def write_totals(session: Session, run_id: str, totals: dict[str, Figures]) -> None:
    """Rows for accounts no earlier batch wrote."""
    dialect_of(session).insert(session, table_of(SourceTotal), _total_rows(run_id, totals))


def add_to_totals(session: Session, run_id: str, totals: dict[str, Figures]) -> None:
    """Add a batch's money to accounts an earlier batch already gave a row."""
    dialect_of(session).add_to(session, table_of(SourceTotal), ("run_id", "account"), _total_rows(run_id, totals))


def _total_rows(run_id: str, totals: dict[str, Figures]) -> list[dict[str, Any]]:
    return [{"run_id": run_id, "account": account, **figures.as_dict()} for account, figures in totals.items()]


# -- after reading: sequence numbers against the target ------------------------------------------

@dataclass
class _Known:
    """What the target already holds for one account."""

    highest: int = 0
    open_invoice: tuple[int, str] | None = None


def resolve_plans(session: Session, run_id: str) -> int:
    """Give each plan its invoice sequence and name. A plan whose lines were loaded before (the
    same file run again) keeps that invoice; the account's first new plan continues an invoice the
    target left open; the others count on from the account's highest sequence. Returns plans resolved.

    Plans stream in account order and are updated ``PLANS_AT_ONCE`` at a time as they go: what is
    held is one account's claims and one slice of updates, however many plans the ledger made."""
    loaded = dict(_plans_loaded_before(session, run_id))
    claims_loaded: dict[str, set[int]] = {}
    for account, sequence, _ in loaded.values():
        claims_loaded.setdefault(account, set()).add(sequence)
    accounts = _known_invoices(session, run_id)
    changes: list[dict[str, object]] = []
    resolved = 0
    current: str | None = None
    claimed: set[int] = set()
    known = _Known()
    plans = (select(InvoicePlan.plan, InvoicePlan.account, InvoicePlan.name).where(InvoicePlan.run_id == run_id)
             .order_by(InvoicePlan.account, InvoicePlan.plan).execution_options(yield_per=PLANS_AT_ONCE))
    for number, account, given in session.execute(plans):
        first = account != current
        if first:  # the account's first plan: what it holds in the target and what re-runs claimed
            current, claimed = account, claims_loaded.pop(account, set())
            known = accounts.pop(account, _Known())
        if number in loaded:
            _, sequence, name = loaded[number]
        elif first and known.open_invoice is not None and known.open_invoice[0] not in claimed:
            sequence, name = known.open_invoice
        else:
            known.highest += 1
            sequence, name = known.highest, given or f"{account}-{known.highest}"
        claimed.add(sequence)
        changes.append({"run_id": run_id, "plan": number, "sequence": sequence, "name": given or name})
        resolved += 1
        if len(changes) >= PLANS_AT_ONCE:
            _update_plans(session, changes)
            changes = []
    _update_plans(session, changes)
    return resolved


def _update_plans(session: Session, changes: list[dict[str, object]]) -> None:
    """A slice of plans' sequences and names, by primary key, by the database's bulk path."""
    dialect_of(session).update_rows(session, table_of(InvoicePlan), ("run_id", "plan"), changes)


def _plans_loaded_before(session: Session, run_id: str) -> Iterator[tuple[int, tuple[str, int, str]]]:
    """Plans with a line whose idempotency key is already in the ledger: that line's invoice."""
    rows = session.execute(  # the plan's number alone, not whole payloads: a re-run of a million records
        select(StagedRecord.payload[PLAN_FIELD].as_string(), Account.name, Invoice.sequence, Invoice.name)
        .join(LedgerEntry, LedgerEntry.key == StagedRecord.key)
        .join(Transaction, Transaction.id == LedgerEntry.target_id)
        .join(Invoice, Invoice.id == Transaction.invoice_id)
        .join(Account, Account.id == Invoice.account_id)
        .where(StagedRecord.run_id == run_id, StagedRecord.entity.in_(INVOICE_LINES),
               LedgerEntry.entity == StagedRecord.entity)
    )
    for plan, account, sequence, name in rows:
        if plan is not None:
            yield int(plan), (account, sequence, name)


def _known_invoices(session: Session, run_id: str) -> dict[str, _Known]:
    names = select(InvoicePlan.account).where(InvoicePlan.run_id == run_id).distinct().scalar_subquery()
    known: dict[str, _Known] = {}
    for account, highest in session.execute(
        select(Account.name, func.max(Invoice.sequence)).join(Invoice, Invoice.account_id == Account.id)
        .where(Account.name.in_(names)).group_by(Account.name)
    ):
        known[account] = _Known(highest or 0)
    for account, sequence, name in session.execute(
        select(Account.name, Invoice.sequence, Invoice.name).join(Invoice, Invoice.account_id == Account.id)
        .where(Account.name.in_(names), Invoice.state == "open").order_by(Invoice.sequence)
    ):
        known[account].open_invoice = (sequence, name)
    return known
