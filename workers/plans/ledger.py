"""The ledger: ``Debit``, ``Credit`` and ``OpeningBalance`` lines on invoices, ``CloseInvoice`` and
``Payment``. Which invoice a line belongs to was settled by the producer (``producer/ledger.py``);
the planners build the batch's rows, and the writers put them on their invoices together: invoices
made and locked once per batch, totals moved by one set-based addition, the closes of a
``CloseInvoice`` in one statement, payments disbursed again once per touched invoice."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from shared.dialects import dialect_of, table_of
from shared.envelope import Envelope
from shared.errors import MissingField, RuleViolation, UnknownReference
from shared.hints import hint_for
from shared.money import TAX_SLOTS, ZERO, credit_amount, money, tax_on
from shared.schema.ledger import Invoice, Payment, Transaction
from workers.invoices import add_to_totals, ensure_invoices, settle
from workers.lookups import AccountRow, Lookups, PlanRow
from workers.plans import Batch, Planned, Planner, planner
from workers.plans.accounts import require

OPENING_BALANCE_SERVICE = "Opening Balance"
INVOICES_LISTED = 12
TRANSACTIONS = table_of(Transaction)
PAYMENTS = table_of(Payment)
INVOICES = table_of(Invoice)


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


@dataclass
class OnInvoice:
    """Where a line goes: its account and plan; the invoice id is known once the batch's invoices are made."""

    account: AccountRow
    plan: PlanRow


def plan_of(env: Envelope, found: Lookups) -> PlanRow:
    number = env.fields.get("_plan")
    if number is None:
        raise MissingField(f"{env.entity} carries no invoice plan: stage it again with this version of cutover",
                           field="_plan", value="")
    return found.plans[(env.run_id, int(number))]


def _want_plans(records: Sequence[Envelope], found: Lookups) -> None:
    found.want_plans((e.run_id, int(e.fields["_plan"])) for e in records if e.fields.get("_plan") is not None)


def _day(text: str | None) -> date | None:
    return datetime.fromisoformat(text).date() if text else None


@planner
class Lines(Planner):
    entities = ("Debit", "Credit", "OpeningBalance")

    def prefetch(self, records: Sequence[Envelope], batch: Batch) -> None:
        found = batch.found
        found.want_accounts(e.fields.get("User") for e in records)
        found.want_refs("TaxCode", (e.fields.get("TaxCode") for e in records))
        found.want_refs("Service", [*(e.fields.get("Package") for e in records), OPENING_BALANCE_SERVICE])
        _want_plans(records, found)
        codes = [found.ref_ids.get(("TaxCode", e.fields.get("TaxCode") or "")) for e in records]
        codes += [a.tax_code_id for e in records for a in found.accounts.get(e.fields.get("User", ""), [])]
        found.want_tax_rates(codes)

    def plan(self, env: Envelope, batch: Batch) -> Planned:
        found = batch.found
        account = found.account(require(env, "User"), "User")
        line = {"Debit": _debit, "Credit": _credit, "OpeningBalance": _opening_balance}[env.entity](env, found, account)
        taxes = {f"tax{i}": line.taxes.get(i, ZERO) for i in TAX_SLOTS}
        values = {
            "source_key": env.key, "account_id": account.id, "invoice_id": None, "kind": line.kind,
            "posted_at": datetime.fromisoformat(require(env, "Date")), "description": env.fields.get("Description"),
            "service_id": line.service_id, "tax_code_id": line.tax_code_id, "debit": line.debit, "credit": line.credit,
            "bulk": line.bulk, **taxes, "tax_applied": line.tax_applied, "amount": line.amount, "tax": line.tax,
            "ignored_tax": line.ignored_tax, "period_start": _day(env.fields.get("PeriodStart")),
            "period_end": _day(env.fields.get("PeriodEnd")),
        }
        return Planned(env, TRANSACTIONS, {}, values, after=OnInvoice(account, plan_of(env, found)))

    def write(self, session: Session, planned: list[Planned], batch: Batch) -> None:
        if not planned:
            return
        invoices = ensure_invoices(session, {(p.after.account.id, p.after.plan.sequence): (p.after.plan, p.after.account.name)
                                             for p in planned})
        deltas: dict[int, tuple[Decimal, Decimal]] = {}
        for row in planned:
            invoice = invoices[(row.after.account.id, row.after.plan.sequence)]
            row.values["invoice_id"] = invoice.id
            amount, tax = deltas.get(invoice.id, (ZERO, ZERO))
            deltas[invoice.id] = (amount + row.values["amount"], tax + row.values["tax"])
        returned = dialect_of(session).insert_returning(session, TRANSACTIONS, [r.values for r in planned], ("id",))
        for row, (new_id,) in zip(planned, returned, strict=True):
            row.target_id = new_id
        add_to_totals(session, deltas)
        settle(session, deltas)


def _tax_rates(found: Lookups, tax_code_id: int | None) -> dict[int, Decimal]:
    if tax_code_id is None:
        return {}
    if tax_code_id not in found.tax_rates:
        found.want_tax_rates([tax_code_id])
    return found.tax_rates.get(tax_code_id, {})


def _debit(env: Envelope, found: Lookups, account: AccountRow) -> Line:
    """Stated taxes are kept only where the TaxCode has that rate (the seed: "without this config,
    the tax value will be ignored"); what is ignored is kept aside for reconciliation."""
    tax_code_id = found.optional_ref("TaxCode", env.fields.get("TaxCode"), "TaxCode")
    rates = _tax_rates(found, tax_code_id)
    stated = {i: money(env.fields.get(f"Tax{i}")) for i in TAX_SLOTS}
    kept = {i: amount for i, amount in stated.items() if i in rates}
    return Line("debit", debit=money(env.fields.get("Debit")), credit=money(env.fields.get("Credit")), taxes=kept,
                ignored_tax=sum(stated.values(), ZERO) - sum(kept.values(), ZERO), tax_code_id=tax_code_id,
                service_id=found.optional_ref("Service", env.fields.get("Package"), "Package"))


def _credit(env: Envelope, found: Lookups, account: AccountRow) -> Line:
    """Amount = Credit × Bulk; with ApplyTax, taxes from the record's TaxCode (or the account's)."""
    tax_code_id = found.optional_ref("TaxCode", env.fields.get("TaxCode"), "TaxCode")
    amount = credit_amount(env.fields)
    taxes: dict[int, Decimal] = {}
    apply_tax = env.fields.get("ApplyTax") == "true"
    if apply_tax:
        code = tax_code_id or account.tax_code_id
        if code is None:
            raise RuleViolation("ApplyTax needs a TaxCode, on the record or on the account", field="ApplyTax", value="True",
                                hint=f"add TaxCode to the record, or give account {account.name!r} a TaxCode")
        taxes = {i: tax_on(amount, rate) for i, rate in _tax_rates(found, code).items()}
        tax_code_id = code
    bulk = env.fields.get("Bulk")
    return Line("credit", credit=amount, taxes=taxes, tax_applied=apply_tax, tax_code_id=tax_code_id,
                service_id=found.optional_ref("Service", env.fields.get("Package"), "Package"),
                bulk=Decimal(bulk) if bulk else None)


def _opening_balance(env: Envelope, found: Lookups, account: AccountRow) -> Line:
    """Positive: owed by the customer (a debit); negative: a credit balance that carries forward."""
    amount = money(require(env, "Amount"))
    service = found.ref_ids.get(("Service", OPENING_BALANCE_SERVICE))
    if service is None:
        raise UnknownReference(f"Service {OPENING_BALANCE_SERVICE!r} not found: opening balances are tagged with it",
                               field="Amount", value=str(amount),
                               hint=f'add <Service Name="{OPENING_BALANCE_SERVICE}"/> to the reference data, as the seed advises')
    if amount >= 0:
        return Line("opening", debit=amount, service_id=service)
    return Line("opening", credit=-amount, service_id=service)


@planner
class Closes(Planner):
    """Make sure the invoices a close ends exist and are closed (their lines may all have failed).
    With ``User``: that account's invoice. Without: every invoice of the close whose account exists;
    the others' lines are dead-lettered and rebuild their invoice, closed, when replayed."""

    entities = ("CloseInvoice",)
    records_at_once = 25
    """A bare close closes every account's invoice since the previous close: at a million records a
    batch of 1,365 closes held 136,500 plans and invoices in one transaction (a pool process peaked
    at 428 MB, against 151 MB at 100k)."""

    def prefetch(self, records: Sequence[Envelope], batch: Batch) -> None:
        found = batch.found
        found.want_accounts(e.fields.get("User") for e in records)
        _want_plans([e for e in records if e.fields.get("User")], found)
        closes = {(e.run_id, int(e.fields["_close"])) for e in records if not e.fields.get("User") and e.fields.get("_close")}
        batch.memo["closes"] = {key: found.close_plans(*key) for key in closes}
        found.want_accounts(p.account for plans in batch.memo["closes"].values() for p in plans)

    def plan(self, env: Envelope, batch: Batch) -> Planned:
        found = batch.found
        if env.fields.get("User"):
            account = found.account(require(env, "User"), "User")
            return Planned(env, INVOICES, {}, {}, after=[(account, plan_of(env, found))])
        plans = batch.memo["closes"][(env.run_id, int(require(env, "_close")))]
        wanted = [(found.accounts[p.account][0], p) for p in plans if len(found.accounts.get(p.account, [])) == 1]
        return Planned(env, INVOICES, {}, {}, after=wanted)

    def write(self, session: Session, planned: list[Planned], batch: Batch) -> None:
        wanted = {(account.id, plan.sequence): (plan, account.name) for row in planned for account, plan in row.after}
        invoices = ensure_invoices(session, wanted)
        for row in planned:
            mine = [invoices[(account.id, plan.sequence)].id for account, plan in row.after]
            row.target_id = mine[0] if row.env.fields.get("User") and mine else None


@planner
class Payments(Planner):
    entities = ("Payment",)

    def prefetch(self, records: Sequence[Envelope], batch: Batch) -> None:
        found = batch.found
        found.want_accounts(e.fields.get("User") for e in records)
        found.want_refs("PaymentType", (e.fields.get("PaymentType") for e in records))
        named = [e for e in records if e.fields.get("Invoice")]
        if not named:
            batch.memo["invoices"] = {}
            return
        accounts = [a.id for e in named for a in found.accounts.get(e.fields.get("User", ""), [])]
        chains = _chains(found, accounts)
        batch.memo["chains"] = chains
        batch.memo["invoices"] = found.invoices_named([i for c in chains.values() for i in c],
                                                      [str(e.fields["Invoice"]) for e in named])

    def plan(self, env: Envelope, batch: Batch) -> Planned:
        found = batch.found
        account = found.account(require(env, "User"), "User")
        amount = money(require(env, "Credit"))
        invoice_name = env.fields.get("Invoice")
        invoice_id = _named_invoice(batch, account, invoice_name) if invoice_name else None
        values = {
            "source_key": env.key, "record_order": env.record_id, "account_id": account.id, "invoice_id": invoice_id,
            "received_at": datetime.fromisoformat(require(env, "Date")), "description": env.fields.get("Description"),
            "payment_type_id": found.optional_ref("PaymentType", env.fields.get("PaymentType"), "PaymentType"),
            "amount": amount, "auto_disburse": invoice_id is None, "undisbursed": amount,
        }
        return Planned(env, PAYMENTS, {}, values)

    def write(self, session: Session, planned: list[Planned], batch: Batch) -> None:
        if not planned:
            return
        named = sorted({r.values["invoice_id"] for r in planned if r.values["invoice_id"] is not None})
        if named:  # lock the invoices the batch pays, in id order, before their disbursement is recomputed
            session.execute(INVOICES.select().where(Invoice.id.in_(named)).order_by(Invoice.id).with_for_update())
        returned = dialect_of(session).insert_returning(session, PAYMENTS, [r.values for r in planned], ("id",))
        for row, (new_id,) in zip(planned, returned, strict=True):
            row.target_id = new_id
        settle(session, named)


def _chains(found: Lookups, account_ids: list[int]) -> dict[int, list[int]]:
    """Each account with its parents, nearest first (a child pays its parent's invoice)."""
    chains = {a: [a] for a in account_ids}
    frontier = set(account_ids)
    for _ in range(64):
        parents = found.parents_of(frontier)
        frontier = set()
        for chain in chains.values():
            parent = parents.get(chain[-1])
            if parent is not None and parent not in chain:
                chain.append(parent)
                frontier.add(parent)
        if not frontier:
            break
    return chains


def _named_invoice(batch: Batch, account: AccountRow, name: str) -> int:
    """An invoice of the paying account or, for a child account, of one of its parents."""
    chain = batch.memo["chains"].get(account.id, [account.id])
    found_invoices = batch.memo["invoices"]
    for candidate in chain:
        hit = found_invoices.get((candidate, name))
        if hit is not None:
            return int(hit[0])
    names = batch.found.invoice_names(chain)
    listed = ", ".join(names[:INVOICES_LISTED]) + (f", … ({len(names)} in all)" if len(names) > INVOICES_LISTED else "")
    whose = " and its parents" if len(chain) > 1 else ""
    near = hint_for(name, names)
    hint = f"{near}; " if near else ""
    raise UnknownReference(f"invoice {name!r} not found on account {account.name!r}{whose}", field="Invoice", value=name,
                           hint=f"{hint}its invoices: {listed}" if names else f"account {account.name!r} has no invoices; "
                           "leave Invoice empty to auto-disburse")
