"""Invoice state shared by the ledger loaders: an invoice is built from its plan by whichever record
reaches it first, its totals move by commutative additions, and payments are disbursed to it by a
full recomputation in source order. So the result is the same whatever order records load in."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, object_session

from shared.errors import MissingField
from shared.money import ZERO
from shared.schema.control import InvoicePlan
from shared.schema.ledger import Invoice, Payment, PaymentAllocation
from shared.schema.target import Account
from workers.context import BatchCache, LoadContext


def plan_of(ctx: LoadContext, number: str | None = None) -> InvoicePlan:
    """The invoice plan the producer gave this record (stored with its run)."""
    wanted = number if number is not None else ctx.get("_plan")
    if wanted is None:
        raise MissingField(f"{ctx.entity.name} carries no invoice plan: stage it again with this version of cutover",
                           field="_plan", value="")
    key = (ctx.envelope.run_id, int(wanted))
    if ctx.batch is not None and ("plan", key) not in ctx.batch.memo:
        _prefetch_plans(ctx)
    return ctx.memo(("plan", key), lambda: ctx.session.get_one(InvoicePlan, key))


def _prefetch_plans(ctx: LoadContext) -> None:
    """Every plan the batch's records name, in one query per run."""
    assert ctx.batch is not None
    wanted: dict[str, set[int]] = {}
    for env in ctx.batch.envelopes:
        number = env.fields.get("_plan")
        if number is not None and ("plan", (env.run_id, int(number))) not in ctx.batch.memo:
            wanted.setdefault(env.run_id, set()).add(int(number))
    for run_id, numbers in wanted.items():
        ordered = sorted(numbers)
        for start in range(0, len(ordered), 1000):
            for plan in ctx.session.scalars(select(InvoicePlan).where(InvoicePlan.run_id == run_id,
                                                                       InvoicePlan.plan.in_(ordered[start:start + 1000]))):
                ctx.batch.memo[("plan", (plan.run_id, plan.plan))] = plan


def invoice_for(session: Session, plan: InvoicePlan, account: Account, batch: BatchCache | None = None) -> Invoice:
    """The plan's invoice, created if no record of the plan has created it yet, and locked for update.
    A closing plan closes it (and names it, and marks it printed) whoever gets there first.
    In a batch, every invoice the batch's lines go on is made and locked at once (``_prepare``)."""
    assert plan.sequence is not None, "plans are resolved before any record is published"
    key = (account.id, plan.sequence)
    if batch is not None and not batch.invoices_prepared:
        _prepare(session, batch)
    invoice = batch.invoices.get(key) if batch is not None else None
    if invoice is None:
        invoice = _locked(session, account.id, plan.sequence)
    if invoice is None:
        invoice = Invoice(**_new_invoice(plan, account))
        session.add(invoice)
        session.flush()
    if batch is not None:
        batch.invoices[key] = invoice
    if plan.closed:
        invoice.state = "closed"
        invoice.printed = invoice.printed or plan.printed
        if plan.name:
            invoice.name = plan.name
    invoice.opening_balance = invoice.opening_balance or plan.opening
    return invoice


def _new_invoice(plan: InvoicePlan, account: Account) -> dict[str, object]:
    return {"account_id": account.id, "sequence": plan.sequence, "name": plan.name or f"{account.name}-{plan.sequence}",
            "state": "closed" if plan.closed else "open", "printed": plan.printed, "opening_balance": plan.opening,
            "subtotal": ZERO, "tax": ZERO, "total": ZERO, "amount_paid": ZERO, "outstanding": ZERO}


def _prepare(session: Session, batch: BatchCache) -> None:
    """Make the invoices the batch's lines name (``INSERT … ON CONFLICT DO NOTHING``, so two batches
    making the same invoice wait for each other instead of failing), then lock them all, both in
    (account, sequence) order so concurrent batches take their locks in the same order."""
    batch.invoices_prepared = True
    wanted: dict[tuple[int, int], dict[str, object]] = {}
    for env in batch.envelopes:
        number, found = env.fields.get("_plan"), batch.accounts.get(env.fields.get("User", ""), [])
        plan = batch.memo.get(("plan", (env.run_id, int(number)))) if number is not None else None
        if plan is not None and plan.sequence is not None and len(found) == 1:
            wanted.setdefault((found[0].id, plan.sequence), _new_invoice(plan, found[0]))
    if not wanted:
        return
    keys = sorted(wanted)
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    for start in range(0, len(keys), 500):
        part = keys[start:start + 500]
        session.execute(insert(Invoice).values([wanted[k] for k in part]).on_conflict_do_nothing())
        for invoice in session.scalars(select(Invoice).where(tuple_(Invoice.account_id, Invoice.sequence).in_(part))
                                       .order_by(Invoice.account_id, Invoice.sequence).with_for_update()
                                       .execution_options(populate_existing=True)):
            batch.invoices[(invoice.account_id, invoice.sequence)] = invoice


def _locked(session: Session, account_id: int, sequence: int) -> Invoice | None:
    return session.scalars(
        select(Invoice).where(Invoice.account_id == account_id, Invoice.sequence == sequence)
        .with_for_update().execution_options(populate_existing=True)
    ).first()


def lock(session: Session, invoice_id: int) -> Invoice:
    return session.scalars(select(Invoice).where(Invoice.id == invoice_id).with_for_update()
                           .execution_options(populate_existing=True)).one()


def add_line(session: Session, invoice: Invoice, amount: Decimal, tax: Decimal) -> None:
    """Put a line's amounts on its (locked) invoice; the caller disburses payments again (``settle_invoices``),
    once per invoice and transaction."""
    invoice.subtotal += amount
    invoice.tax += tax
    invoice.total = invoice.subtotal + invoice.tax


def settle_invoices(invoices: list[Invoice], session: Session | None = None) -> None:
    """Disburse the payments that name each invoice, earliest in the source first, each as far as
    the invoice's total still goes; the rest of a payment stays undisbursed. One query for all the
    invoices' payments: a batch owes this to every invoice its lines or payments touched."""
    if not invoices:
        return
    session = session or object_session(invoices[0])
    assert session is not None, "invoices to settle belong to the loading session"
    session.flush()  # new invoices get their ids
    by_id = {invoice.id: invoice for invoice in invoices}
    owed: dict[int, list[tuple[Payment, PaymentAllocation | None]]] = {invoice_id: [] for invoice_id in by_id}
    ids = sorted(by_id)
    for start in range(0, len(ids), 1000):
        rows = session.execute(
            select(Payment, PaymentAllocation)
            .outerjoin(PaymentAllocation, (PaymentAllocation.payment_id == Payment.id)
                       & (PaymentAllocation.invoice_id == Payment.invoice_id))
            .where(Payment.invoice_id.in_(ids[start:start + 1000]))
            .order_by(Payment.invoice_id, Payment.record_order, Payment.id)
        ).all()
        for payment, allocation in rows:
            owed[payment.invoice_id or 0].append((payment, allocation))
    for invoice_id, invoice in by_id.items():
        _disburse(session, invoice, owed[invoice_id])


def _disburse(session: Session, invoice: Invoice, rows: list[tuple[Payment, PaymentAllocation | None]]) -> None:
    remaining = max(invoice.total, ZERO)
    paid = ZERO
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
            session.delete(allocation)
    invoice.amount_paid = paid
    invoice.outstanding = invoice.total - paid
