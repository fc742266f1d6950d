"""Target ledger tables: invoices, their transactions (debit and credit lines), payments and how
payments are disbursed to invoices. Every amount is a :class:`Money` column (exact decimals)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Boolean, Date, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.schema.base import Base
from shared.schema.control import BigId
from shared.schema.money import Money

ZERO = Decimal("0.0000")


class Invoice(Base):
    """One invoice of an account. ``sequence`` counts the account's invoices 1, 2, …; ``name``
    defaults to ``<account>-<sequence>``. Totals are kept up to date as lines and payments load:
    ``total = subtotal + tax``, ``outstanding = total - amount_paid``."""

    __tablename__ = "invoices"
    __table_args__ = (UniqueConstraint("account_id", "sequence"), Index("ix_invoices_account_name", "account_id", "name"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    sequence: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(8), default="open")
    """``open`` or ``closed``."""
    printed: Mapped[bool] = mapped_column(Boolean, default=False)
    opening_balance: Mapped[bool] = mapped_column(Boolean, default=False)
    subtotal: Mapped[Decimal] = mapped_column(Money(), default=ZERO)
    tax: Mapped[Decimal] = mapped_column(Money(), default=ZERO)
    total: Mapped[Decimal] = mapped_column(Money(), default=ZERO)
    amount_paid: Mapped[Decimal] = mapped_column(Money(), default=ZERO)
    outstanding: Mapped[Decimal] = mapped_column(Money(), default=ZERO)


class Transaction(Base):
    """A debit or credit line on an invoice. ``debit``/``credit`` and ``tax1..tax4`` are absolute
    amounts as charged; ``amount`` (= debit − credit) and ``tax`` carry the sign of the line, so an
    invoice's subtotal is the sum of ``amount``. ``ignored_tax`` keeps taxes the source stated but
    the TaxCode has no rate for (the seed ignores them; we keep the figure for reconciliation)."""

    __tablename__ = "transactions"
    __table_args__ = (UniqueConstraint("source_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source_key: Mapped[str] = mapped_column(String(64))
    """The record's idempotency key: ties the row to the source record that made it."""
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    invoice: Mapped[Invoice] = relationship(lazy="raise")
    """Lets a batch add lines to invoices it has just created, all inserted in one flush."""
    kind: Mapped[str] = mapped_column(String(16))
    """``debit``, ``credit`` or ``opening`` (an opening balance)."""
    posted_at: Mapped[datetime] = mapped_column(DateTime)
    description: Mapped[str | None] = mapped_column(Text)
    service_id: Mapped[int | None] = mapped_column(ForeignKey("reference_items.id"))
    tax_code_id: Mapped[int | None] = mapped_column(ForeignKey("reference_items.id"))
    debit: Mapped[Decimal] = mapped_column(Money(), default=ZERO)
    credit: Mapped[Decimal] = mapped_column(Money(), default=ZERO)
    bulk: Mapped[Decimal | None] = mapped_column(Money())
    tax1: Mapped[Decimal] = mapped_column(Money(), default=ZERO)
    tax2: Mapped[Decimal] = mapped_column(Money(), default=ZERO)
    tax3: Mapped[Decimal] = mapped_column(Money(), default=ZERO)
    tax4: Mapped[Decimal] = mapped_column(Money(), default=ZERO)
    tax_applied: Mapped[bool] = mapped_column(Boolean, default=False)
    """Taxes computed from the TaxCode's rates (``ApplyTax``) rather than stated by the source."""
    amount: Mapped[Decimal] = mapped_column(Money())
    tax: Mapped[Decimal] = mapped_column(Money())
    ignored_tax: Mapped[Decimal] = mapped_column(Money(), default=ZERO)
    period_start: Mapped[date | None] = mapped_column(Date)
    period_end: Mapped[date | None] = mapped_column(Date)


class Payment(Base):
    """A payment received. With an invoice named, it is disbursed to it as far as it goes and the
    rest stays ``undisbursed`` (auto-disburse off); without, ``auto_disburse`` is on and nothing is
    disbursed until the billing system does it. ``record_order`` (the source record's place in the
    migration) decides which payment is disbursed first when several name the same invoice."""

    __tablename__ = "payments"
    __table_args__ = (UniqueConstraint("source_key"), Index("ix_payments_invoice_order", "invoice_id", "record_order"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source_key: Mapped[str] = mapped_column(String(64))
    record_order: Mapped[int] = mapped_column(BigId)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"))
    received_at: Mapped[datetime] = mapped_column(DateTime)
    description: Mapped[str | None] = mapped_column(Text)
    payment_type_id: Mapped[int | None] = mapped_column(ForeignKey("reference_items.id"))
    amount: Mapped[Decimal] = mapped_column(Money())
    auto_disburse: Mapped[bool] = mapped_column(Boolean)
    undisbursed: Mapped[Decimal] = mapped_column(Money())


class PaymentAllocation(Base):
    """How much of a payment went to an invoice."""

    __tablename__ = "payment_allocations"
    __table_args__ = (UniqueConstraint("payment_id", "invoice_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"))
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Money())
