"""The ledger: ``Debit``, ``Credit`` and ``OpeningBalance`` lines on invoices, ``CloseInvoice`` and
``Payment``. Which invoice a line belongs to was settled by the producer (``producer.ledger``); a
loader only builds the line, puts it on that invoice and disburses payments again."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import select

from shared.errors import RuleViolation, UnknownReference
from shared.hints import hint_for
from shared.money import INVOICE_LINES, TAX_SLOTS, ZERO, credit_amount, money, tax_on
from shared.schema.control import InvoicePlan
from shared.schema.ledger import Invoice, Payment, Transaction
from shared.schema.target import Account, ReferenceItem
from workers.context import LoadContext, Loaded
from workers.invoices import add_line, invoice_for, lock, plan_of, settle_invoices
from workers.loaders import loader

OPENING_BALANCE_SERVICE = "Opening Balance"
INVOICES_LISTED = 12


@dataclass
class Line:
    """A transaction's values before it is put on an invoice."""

    kind: str
    debit: Decimal = ZERO
    credit: Decimal = ZERO
    taxes: dict[int, Decimal] = field(default_factory=dict)
    ignored_tax: Decimal = ZERO
    tax_applied: bool = False
    tax_code_id: int | None = None
    service_id: int | None = None
    bulk: Decimal | None = None

    @property
    def amount(self) -> Decimal:
        return self.debit - self.credit

    @property
    def tax(self) -> Decimal:
        """Taxes follow the line: charged on a debit, given back on a credit."""
        total = sum(self.taxes.values(), ZERO)
        return -total if self.kind == "credit" else total


def _tax_rates(ctx: LoadContext, tax_code_id: int | None) -> dict[int, Decimal]:
    if tax_code_id is None:
        return {}

    def read() -> dict[int, Decimal]:
        item = ctx.session.get_one(ReferenceItem, tax_code_id)
        return {i: Decimal(item.attributes[f"Rate{i}"]) for i in TAX_SLOTS if item.attributes.get(f"Rate{i}")}
    return ctx.memo(("tax rates", tax_code_id), read)


def _debit(ctx: LoadContext, account: Account) -> Line:
    """Stated taxes are kept only where the TaxCode has that rate (the seed: "without this config,
    the tax value will be ignored"); what is ignored is kept aside for reconciliation."""
    tax_code_id = ctx.optional_ref("TaxCode", "TaxCode")
    rates = _tax_rates(ctx, tax_code_id)
    stated = {i: money(ctx.get(f"Tax{i}")) for i in TAX_SLOTS}
    kept = {i: amount for i, amount in stated.items() if i in rates}
    return Line("debit", debit=money(ctx.get("Debit")), credit=money(ctx.get("Credit")), taxes=kept,
                ignored_tax=sum(stated.values(), ZERO) - sum(kept.values(), ZERO), tax_code_id=tax_code_id,
                service_id=ctx.optional_ref("Service", "Package"))


def _credit(ctx: LoadContext, account: Account) -> Line:
    """Amount = Credit × Bulk; with ApplyTax, taxes from the record's TaxCode (or the account's)."""
    tax_code_id = ctx.optional_ref("TaxCode", "TaxCode")
    amount = credit_amount(ctx.fields)
    taxes: dict[int, Decimal] = {}
    apply_tax = ctx.get("ApplyTax") == "true"
    if apply_tax:
        code = tax_code_id or account.tax_code_id
        if code is None:
            raise RuleViolation("ApplyTax needs a TaxCode, on the record or on the account", field="ApplyTax", value="True",
                                hint=f"add TaxCode to the record, or give account {account.name!r} a TaxCode")
        taxes = {i: tax_on(amount, rate) for i, rate in _tax_rates(ctx, code).items()}
        tax_code_id = code
    bulk = ctx.get("Bulk")
    return Line("credit", credit=amount, taxes=taxes, tax_applied=apply_tax, tax_code_id=tax_code_id,
                service_id=ctx.optional_ref("Service", "Package"), bulk=Decimal(bulk) if bulk else None)


def _opening_balance(ctx: LoadContext, account: Account) -> Line:
    """Positive: owed by the customer (a debit); negative: a credit balance that carries forward."""
    amount = money(ctx.require("Amount"))
    service = ctx.memo(("service", OPENING_BALANCE_SERVICE), lambda: ctx.session.scalar(
        select(ReferenceItem.id).where(ReferenceItem.kind == "Service", ReferenceItem.name == OPENING_BALANCE_SERVICE)))
    if service is None:
        raise UnknownReference(f"Service {OPENING_BALANCE_SERVICE!r} not found: opening balances are tagged with it",
                               field="Amount", value=str(amount),
                               hint=f'add <Service Name="{OPENING_BALANCE_SERVICE}"/> to the reference data, as the seed advises')
    if amount >= 0:
        return Line("opening", debit=amount, service_id=service)
    return Line("opening", credit=-amount, service_id=service)


LINE_BUILDERS = {"Debit": _debit, "Credit": _credit, "OpeningBalance": _opening_balance}


def _day(text: str | None) -> date | None:
    return datetime.fromisoformat(text).date() if text else None


@loader(*INVOICE_LINES)
def load_line(ctx: LoadContext) -> Loaded:
    account = ctx.account("User")
    line = LINE_BUILDERS[ctx.entity.name](ctx, account)
    invoice = invoice_for(ctx.session, plan_of(ctx), account, ctx.batch)
    taxes = {f"tax{i}": line.taxes.get(i, ZERO) for i in TAX_SLOTS}
    row = Transaction(
        source_key=ctx.envelope.key, account_id=account.id, invoice=invoice, kind=line.kind,
        posted_at=datetime.fromisoformat(ctx.require("Date")), description=ctx.get("Description"),
        service_id=line.service_id, tax_code_id=line.tax_code_id, debit=line.debit, credit=line.credit, bulk=line.bulk,
        tax_applied=line.tax_applied, amount=line.amount, tax=line.tax, ignored_tax=line.ignored_tax,
        period_start=_day(ctx.get("PeriodStart")), period_end=_day(ctx.get("PeriodEnd")), **taxes,
    )
    ctx.session.add(row)
    add_line(ctx.session, invoice, line.amount, line.tax)
    ctx.defer(settle_invoices, (invoice.account_id, invoice.sequence), invoice)
    return Loaded(row=row)


@loader("CloseInvoice")
def load_close(ctx: LoadContext) -> Loaded:
    """Make sure the invoices this close ends exist and are closed (their lines may all have failed).
    With ``User``: that account's invoice. Without: every invoice of the close whose account exists;
    the others' lines are dead-lettered and rebuild their invoice, closed, when replayed."""
    if ctx.get("User"):
        invoice = invoice_for(ctx.session, plan_of(ctx), ctx.account("User"))
        return Loaded(invoice.id)
    plans = ctx.session.scalars(select(InvoicePlan).where(InvoicePlan.run_id == ctx.envelope.run_id,
                                                          InvoicePlan.close_no == int(ctx.require("_close")))
                                .order_by(InvoicePlan.account)).all()
    for plan in plans:
        account = ctx.session.scalars(select(Account).where(Account.name == plan.account).limit(1)).first()
        if account is not None:
            invoice_for(ctx.session, plan, account)
    return Loaded(None)


@loader("Payment")
def load_payment(ctx: LoadContext) -> Loaded:
    account = ctx.account("User")
    amount = money(ctx.require("Credit"))
    invoice_name = ctx.get("Invoice")
    invoice = _named_invoice(ctx, account, invoice_name) if invoice_name else None
    payment = Payment(
        source_key=ctx.envelope.key, record_order=ctx.envelope.record_id, account_id=account.id,
        invoice_id=invoice.id if invoice else None, received_at=datetime.fromisoformat(ctx.require("Date")),
        description=ctx.get("Description"), payment_type_id=ctx.optional_ref("PaymentType", "PaymentType"),
        amount=amount, auto_disburse=invoice is None, undisbursed=amount,
    )
    ctx.session.add(payment)
    if invoice is not None:
        locked = lock(ctx.session, invoice.id)
        ctx.defer(settle_invoices, (locked.account_id, locked.sequence), locked)
    return Loaded(row=payment)


def _named_invoice(ctx: LoadContext, account: Account, name: str) -> Invoice:
    """An invoice of the paying account or, for a child account, of one of its parents."""
    chain = _account_and_parents(ctx, account)
    found = ctx.session.scalars(select(Invoice).where(Invoice.account_id.in_([a.id for a in chain]), Invoice.name == name)
                                .order_by(Invoice.sequence)).all()
    for candidate in chain:
        for invoice in found:
            if invoice.account_id == candidate.id:
                return invoice
    names = ctx.session.scalars(select(Invoice.name).where(Invoice.account_id.in_([a.id for a in chain]))
                                .order_by(Invoice.account_id, Invoice.sequence)).all()
    listed = ", ".join(names[:INVOICES_LISTED]) + (f", … ({len(names)} in all)" if len(names) > INVOICES_LISTED else "")
    whose = " and its parents" if len(chain) > 1 else ""
    near = hint_for(name, names)
    hint = f"{near}; " if near else ""
    raise UnknownReference(f"invoice {name!r} not found on account {account.name!r}{whose}", field="Invoice", value=name,
                           hint=f"{hint}its invoices: {listed}" if names else f"account {account.name!r} has no invoices; "
                           "leave Invoice empty to auto-disburse")


def _account_and_parents(ctx: LoadContext, account: Account) -> list[Account]:
    chain = [account]
    while chain[-1].parent_id is not None and len(chain) < 64:
        chain.append(ctx.session.get_one(Account, chain[-1].parent_id))
    return chain
