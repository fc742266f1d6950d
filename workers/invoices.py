"""Invoices, set-based, for the ledger planners. An invoice is made from its plan by whichever batch
reaches it first (``INSERT … ON CONFLICT DO NOTHING``: two batches making the same invoice wait for
each other instead of failing), then the batch's invoices are locked together in (account, sequence)
order, so concurrent batches take their locks in the same order. Totals move by additions (one
``UPDATE … FROM`` per batch), which commute; payments are disbursed by a full recomputation in source
order. So the result is the same whatever order records load in."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.dialects import dialect_of, table_of
from shared.money import ZERO
from shared.schema.ledger import Invoice, Payment, PaymentAllocation
from workers.lookups import PlanRow, chunks

INVOICES = table_of(Invoice)


@dataclass
class InvoiceRow:
    id: int
    account_id: int
    sequence: int
    name: str
    state: str
    printed: bool
    opening_balance: bool


def new_invoice(plan: PlanRow, account_id: int, account_name: str) -> dict[str, object]:
    return {"account_id": account_id, "sequence": plan.sequence, "name": plan.name or f"{account_name}-{plan.sequence}",
            "state": "closed" if plan.closed else "open", "printed": plan.printed, "opening_balance": plan.opening,
            "subtotal": ZERO, "tax": ZERO, "total": ZERO, "amount_paid": ZERO, "outstanding": ZERO}


def ensure_invoices(session: Session,
                    wanted: dict[tuple[int, int], tuple[PlanRow, str]]) -> dict[tuple[int, int], InvoiceRow]:
    """The invoices of (account id, sequence) → (plan, account name): made if missing, locked, and
    brought in line with their plans (a closing plan closes, names and marks its invoice printed,
    whoever gets there first; an opening plan marks it an opening balance)."""
    if not wanted:
        return {}
    keys = sorted(wanted)
    dialect = dialect_of(session)
    found = _locked(session, keys)
    missing = [k for k in keys if k not in found]
    if missing:  # a concurrent batch's invoice wins quietly; then everything is read again, locked
        dialect.insert_missing(session, INVOICES, [new_invoice(wanted[k][0], k[0], wanted[k][1]) for k in missing],
                               ("account_id", "sequence"))
        found = _locked(session, keys)
    changes = []
    for key, invoice in found.items():
        plan = wanted[key][0]
        change = _plan_changes(invoice, plan)
        if change:
            changes.append({"id": invoice.id, "name": invoice.name, "state": invoice.state, "printed": invoice.printed,
                            "opening_balance": invoice.opening_balance, **change})
            for name, value in change.items():
                setattr(invoice, name, value)
    dialect.update_rows(session, INVOICES, "id", changes)
    return found


def _locked(session: Session, keys: list[tuple[int, int]]) -> dict[tuple[int, int], InvoiceRow]:
    """The invoices of these (account, sequence) keys, locked in key order."""
    dialect = dialect_of(session)
    found: dict[tuple[int, int], InvoiceRow] = {}
    for part in chunks(keys):
        query = (select(Invoice.id, Invoice.account_id, Invoice.sequence, Invoice.name, Invoice.state, Invoice.printed,
                        Invoice.opening_balance)
                 .where(dialect.keys_in([Invoice.account_id, Invoice.sequence], part))
                 .order_by(Invoice.account_id, Invoice.sequence).with_for_update())
        for row in session.execute(query):
            found[(row.account_id, row.sequence)] = InvoiceRow(*row)
    return found


def _plan_changes(invoice: InvoiceRow, plan: PlanRow) -> dict[str, object]:
    change: dict[str, object] = {}
    if plan.closed:
        if invoice.state != "closed":
            change["state"] = "closed"
        if plan.printed and not invoice.printed:
            change["printed"] = True
        if plan.name and invoice.name != plan.name:
            change["name"] = plan.name
    if plan.opening and not invoice.opening_balance:
        change["opening_balance"] = True
    return change


def add_to_totals(session: Session, deltas: dict[int, tuple[Decimal, Decimal]]) -> None:
    """Move invoice totals by (subtotal, tax) deltas, one statement for all."""
    rows = [{"id": invoice_id, "subtotal": amount, "tax": tax, "total": amount + tax, "outstanding": amount + tax}
            for invoice_id, (amount, tax) in sorted(deltas.items()) if amount or tax]
    dialect_of(session).add_to(session, INVOICES, "id", rows)


def settle(session: Session, invoice_ids: Iterable[int]) -> None:
    """Disburse the payments that name each invoice, earliest in the source first, each as far as the
    invoice's total still goes; the rest of a payment stays undisbursed. Only invoices that payments
    name are touched: one query finds them and their payments."""
    ids = sorted(set(invoice_ids))
    if not ids:
        return
    owed: dict[int, list[tuple[int, Decimal, int | None, Decimal | None]]] = {}
    for part in chunks(ids):
        found = session.execute(
            select(Payment.id, Payment.invoice_id, Payment.amount, PaymentAllocation.id, PaymentAllocation.amount)
            .outerjoin(PaymentAllocation, (PaymentAllocation.payment_id == Payment.id)
                       & (PaymentAllocation.invoice_id == Payment.invoice_id))
            .where(dialect_of(session).any_of(Payment.invoice_id, part))
            .order_by(Payment.invoice_id, Payment.record_order, Payment.id))
        for payment_id, invoice_id, amount, allocation_id, allocated in found:
            owed.setdefault(int(invoice_id or 0), []).append((payment_id, amount, allocation_id, allocated))
    if not owed:
        return
    query = select(Invoice.id, Invoice.total).where(dialect_of(session).any_of(Invoice.id, sorted(owed)))
    totals = {row[0]: row[1] for row in session.execute(query)}
    payments: list[dict[str, object]] = []
    new_allocations: list[dict[str, object]] = []
    allocations: list[dict[str, object]] = []
    dropped: list[int] = []
    invoices: list[dict[str, object]] = []
    for invoice_id, rows in owed.items():
        remaining = max(totals[invoice_id], ZERO)
        paid = ZERO
        for pay_id, pay_amount, alloc_id, alloc_amount in rows:
            share = min(pay_amount, remaining)
            remaining -= share
            paid += share
            payments.append({"id": pay_id, "undisbursed": pay_amount - share})
            if share > 0 and alloc_id is None:
                new_allocations.append({"payment_id": pay_id, "invoice_id": invoice_id, "amount": share})
            elif share > 0 and alloc_amount != share:
                allocations.append({"id": alloc_id, "amount": share})
            elif share <= 0 and alloc_id is not None:
                dropped.append(alloc_id)
        invoices.append({"id": invoice_id, "amount_paid": paid, "outstanding": totals[invoice_id] - paid})
    dialect = dialect_of(session)
    dialect.update_rows(session, table_of(Payment), "id", payments)
    dialect.insert(session, table_of(PaymentAllocation), new_allocations)
    dialect.update_rows(session, table_of(PaymentAllocation), "id", allocations)
    if dropped:
        session.execute(table_of(PaymentAllocation).delete().where(PaymentAllocation.id.in_(dropped)))
    dialect.update_rows(session, INVOICES, "id", invoices)
