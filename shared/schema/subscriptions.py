"""Target tables of subscription billing (the iteras format): customers with the ids they had,
their subscriptions and periods, payments in minor units, and future address changes and vacations.

Addresses are stored structured (``{name, company, address, country}`` as JSON), never flattened."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Date, DateTime, ForeignKey, Integer, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shared.schema.base import Base
from shared.schema.control import BigId
from shared.schema.money import Money


class Customer(Base):
    """A customer, under the numeric id it had in the old system. Ids the source did not give are
    assigned by the producer above the highest in the database; on PostgreSQL the id sequence is
    moved past every imported id, so the billing system's own inserts never collide."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    created: Mapped[datetime | None] = mapped_column(DateTime)
    """When the customer started in the old system (UTC when the source gave an offset)."""
    name: Mapped[str | None] = mapped_column(String(255))
    company: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(64))
    address: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    id_assigned: Mapped[bool] = mapped_column(Boolean, default=False)
    """True when the source had no id and cutover gave the next one."""


class Subscription(Base):
    """A subscription of a customer to a campaign, keyed by its id in the old system."""

    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("source_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source_id: Mapped[str] = mapped_column(String(128))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("reference_items.id"))
    manual_invoice_verification: Mapped[bool] = mapped_column(Boolean, default=False)
    """Go-live safety: invoices of this subscription wait for a person to verify them."""


class SubscriptionPeriod(Base):
    """One period of a subscription: the current one (``current``) or a historical one.

    ``end`` is set for time-based campaigns, ``remaining_assignments`` for assignment-counting ones.
    ``invoice_amount`` is what the billing system will invoice for the period: the campaign's price
    (``full``), nothing (``none``), or price × period length ÷ campaign length, to the cent
    (``adjusted_begin`` / ``adjusted_end``). ``external_*`` is what the old system already invoiced,
    credited, paid and refunded, in minor units."""

    __tablename__ = "subscription_periods"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("reference_items.id"))
    current: Mapped[bool] = mapped_column(Boolean, default=False)
    begin: Mapped[date] = mapped_column(Date)
    end: Mapped[date | None] = mapped_column(Date)
    remaining_assignments: Mapped[int | None] = mapped_column(Integer)
    invoicing: Mapped[str] = mapped_column(String(16))
    renewed: Mapped[bool] = mapped_column(Boolean, default=False)
    invoice_amount: Mapped[Decimal] = mapped_column(Money())
    currency: Mapped[str | None] = mapped_column(String(8))
    external_invoiced: Mapped[int | None] = mapped_column(BigInteger)
    external_credited: Mapped[int | None] = mapped_column(BigInteger)
    external_paid: Mapped[int | None] = mapped_column(BigInteger)
    external_refunded: Mapped[int | None] = mapped_column(BigInteger)
    external_currency: Mapped[str | None] = mapped_column(String(8))
    external_tax_rate: Mapped[Decimal | None] = mapped_column(Numeric(9, 6))


class CustomerPayment(Base):
    """Funds registered for a customer, in integer minor units (negative allowed: the seed's
    ``external`` counter-entry). Two equal payments are two payments."""

    __tablename__ = "customer_payments"
    __table_args__ = (UniqueConstraint("source_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source_key: Mapped[str] = mapped_column(String(64))
    """The record's idempotency key: ties the row to the source record that made it."""
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(8))
    method: Mapped[str] = mapped_column(String(64))


class CustomerOverride(Base):
    """A future address change or vacation of a customer, or of one of its subscriptions."""

    __tablename__ = "customer_overrides"
    __table_args__ = (UniqueConstraint("source_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source_key: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    subscription_id: Mapped[int | None] = mapped_column(ForeignKey("subscriptions.id"))
    override_type: Mapped[str] = mapped_column(String(32))
    begin: Mapped[date] = mapped_column(Date)
    end: Mapped[date | None] = mapped_column(Date)
    address: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    weekdays: Mapped[list[int] | None] = mapped_column(JSON(none_as_null=True))
    """1 (Monday) to 7 (Sunday)."""
