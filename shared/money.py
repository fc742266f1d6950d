"""Money rules shared by the producer (source totals), the ledger loaders and reconciliation, so the
three compute every figure the same way. All ``Decimal``; nothing here touches a database."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from shared.schema.money import QUANTUM

ZERO = Decimal("0.0000")
CENT = Decimal("0.01")
TAX_SLOTS = (1, 2, 3, 4)
INVOICE_LINES = ("Debit", "Credit", "OpeningBalance")
"""Records that become a transaction on an invoice."""
MONEY_RECORDS = (*INVOICE_LINES, "Payment")
"""Records whose money the producer sums and reconciliation compares."""
LEDGER_ENTITIES = (*MONEY_RECORDS, "CloseInvoice")


def money(text: str | None) -> Decimal:
    return ZERO if text in (None, "") else Decimal(str(text)).quantize(QUANTUM)


def to_money(value: Decimal) -> Decimal:
    """Round a computed amount (a product) to the stored four places, half up."""
    return value.quantize(QUANTUM, rounding=ROUND_HALF_UP)


def tax_on(amount: Decimal, rate: Decimal) -> Decimal:
    """A computed tax: to the cent, half up (``ApplyTax``)."""
    return (amount * rate).quantize(CENT, rounding=ROUND_HALF_UP).quantize(QUANTUM)


def credit_amount(fields: Mapping[str, str]) -> Decimal:
    """A ``Credit`` record's amount: Credit × Bulk (Bulk defaults to 1)."""
    bulk = fields.get("Bulk")
    return to_money(money(fields.get("Credit")) * (Decimal(bulk) if bulk else Decimal(1)))


@dataclass(frozen=True)
class Figures:
    """What one record (or a sum of records) says about an account's money."""

    debits: Decimal = ZERO
    credits: Decimal = ZERO
    taxes: Decimal = ZERO
    payments: Decimal = ZERO

    def __add__(self, other: Figures) -> Figures:
        return Figures(self.debits + other.debits, self.credits + other.credits, self.taxes + other.taxes,
                       self.payments + other.payments)

    def __sub__(self, other: Figures) -> Figures:
        return Figures(self.debits - other.debits, self.credits - other.credits, self.taxes - other.taxes,
                       self.payments - other.payments)

    def as_dict(self) -> dict[str, Decimal]:
        return {"debits": self.debits, "credits": self.credits, "taxes": self.taxes, "payments": self.payments}


METRICS = ("debits", "credits", "taxes", "payments")


def source_figures(entity: str, fields: Mapping[str, str]) -> Figures:
    """The money a source record states. Taxes are the ones the source wrote (Tax1..Tax4 of a
    ``Debit``); taxes computed by ``ApplyTax`` are not stated by the source and are not counted."""
    if entity == "Debit":
        return Figures(debits=money(fields.get("Debit")), credits=money(fields.get("Credit")),
                       taxes=sum((money(fields.get(f"Tax{i}")) for i in TAX_SLOTS), ZERO))
    if entity == "Credit":
        return Figures(credits=credit_amount(fields))
    if entity == "OpeningBalance":
        amount = money(fields.get("Amount"))
        return Figures(debits=amount) if amount >= 0 else Figures(credits=-amount)
    if entity == "Payment":
        return Figures(payments=money(fields.get("Credit")))
    return Figures()
