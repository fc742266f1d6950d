"""Invoice state shared by the ledger loaders: an invoice is built from its plan by whichever record
reaches it first, its totals move by commutative additions, and payments are disbursed to it by a
full recomputation in source order. So the result is the same whatever order records load in."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from shared.errors import MissingField
from shared.money import ZERO
from shared.schema.control import InvoicePlan
from shared.schema.ledger import Invoice, Payment, PaymentAllocation
from shared.schema.target import Account
from workers.context import LoadContext


def plan_of(ctx: LoadContext, number: str | None = None) -> InvoicePlan:
    """The invoice plan the producer gave this record (stored with its run)."""
    wanted = number if number is not None else ctx.get("_plan")
    if wanted is None:
        raise MissingField(f"{ctx.entity.name} carries no invoice plan: stage it again with this version of cutover",
                           field="_plan", value="")
    return ctx.session.get_one(InvoicePlan, (ctx.envelope.run_id, int(wanted)))


def invoice_for(session: Session, plan: InvoicePlan, account: Account) -> Invoice:
    """The plan's invoice, created if no record of the plan has created it yet, and locked for update.
    A closing plan closes it (and names it, and marks it printed) whoever gets there first."""
    assert plan.sequence is not None, "plans are resolved before any record is published"
    invoice = _locked(session, account.id, plan.sequence)
    if invoice is None:
        invoice = Invoice(account_id=account.id, sequence=plan.sequence, name=plan.name or f"{account.name}-{plan.sequence}",
                          state="closed" if plan.closed else "open", printed=plan.printed, opening_balance=plan.opening,
                          subtotal=ZERO, tax=ZERO, total=ZERO, amount_paid=ZERO, outstanding=ZERO)
        session.add(invoice)
        session.flush()
        return invoice
    if plan.closed:
        invoice.state = "closed"
        invoice.printed = invoice.printed or plan.printed
        if plan.name:
            invoice.name = plan.name
    invoice.opening_balance = invoice.opening_balance or plan.opening
    return invoice


def _locked(session: Session, account_id: int, sequence: int) -> Invoice | None:
    return session.scalars(
        select(Invoice).where(Invoice.account_id == account_id, Invoice.sequence == sequence)
        .with_for_update().execution_options(populate_existing=True)
    ).first()


def lock(session: Session, invoice_id: int) -> Invoice:
    return session.scalars(select(Invoice).where(Invoice.id == invoice_id).with_for_update()
                           .execution_options(populate_existing=True)).one()


def add_line(session: Session, invoice: Invoice, amount: Decimal, tax: Decimal) -> None:
    """Put a line's amounts on its (locked) invoice and disburse payments again."""
    invoice.subtotal += amount
    invoice.tax += tax
    invoice.total = invoice.subtotal + invoice.tax
    settle(session, invoice)


def settle(session: Session, invoice: Invoice) -> None:
    """Disburse the payments that name this invoice, earliest in the source first, each as far as
    the invoice's total still goes; the rest of a payment stays undisbursed."""
    remaining = max(invoice.total, ZERO)
    paid = ZERO
    rows = session.execute(
        select(Payment, PaymentAllocation)
        .outerjoin(PaymentAllocation, (PaymentAllocation.payment_id == Payment.id) & (PaymentAllocation.invoice_id == invoice.id))
        .where(Payment.invoice_id == invoice.id).order_by(Payment.record_order, Payment.id)
    ).all()
    for payment, allocation in rows:
        share = min(payment.amount, remaining)
        remaining -= share
        paid += share
        payment.undisbursed = payment.amount - share
        if share > 0 and allocation is None:
            session.add(PaymentAllocation(payment_id=payment.id, invoice_id=invoice.id, amount=share))
        elif share > 0 and allocation is not None:
            allocation.amount = share
        elif allocation is not None:
            session.execute(delete(PaymentAllocation).where(PaymentAllocation.id == allocation.id))
    invoice.amount_paid = paid
    invoice.outstanding = invoice.total - paid
