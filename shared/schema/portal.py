"""Target tables of the customer portal (the csv format's Customer Import Tool): the logins of an
account — one of them its *owner login*, which autopay and paperless imports act on — their
payment methods, and their enrolments (autopay, paperless delivery) per invoice type.

Card and bank account numbers are stored only as vault ciphertext plus their last four digits."""

from __future__ import annotations

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shared.schema.base import Base
from shared.schema.control import BigId


class Login(Base):
    """A login on an account. ``is_owner`` marks the account's owner login (one per account)."""

    __tablename__ = "logins"
    __table_args__ = (UniqueConstraint("login"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    login: Mapped[str] = mapped_column(String(255))
    is_owner: Mapped[bool] = mapped_column(Boolean, default=True)
    name: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(64))
    address: Mapped[str | None] = mapped_column(Text)


class PaymentMethod(Base):
    """A card or bank account (ACH) of a login. ``secret`` is the vault ciphertext of the number."""

    __tablename__ = "payment_methods"
    __table_args__ = (UniqueConstraint("source_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source_key: Mapped[str] = mapped_column(String(64))
    login_id: Mapped[int] = mapped_column(ForeignKey("logins.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    """``card`` or ``ach``."""
    secret: Mapped[str] = mapped_column(Text)
    last4: Mapped[str] = mapped_column(String(4))
    holder: Mapped[str] = mapped_column(String(255))
    """Name on the card or on the bank account."""
    card_type: Mapped[str | None] = mapped_column(String(32))
    expiry_month: Mapped[int | None] = mapped_column(Integer)
    expiry_year: Mapped[int | None] = mapped_column(Integer)
    bank_name: Mapped[str | None] = mapped_column(String(255))
    routing_number: Mapped[str | None] = mapped_column(String(9))
    account_type: Mapped[str | None] = mapped_column(String(16))


class Enrolment(Base):
    """A login enrolled for ``autopay`` (with the payment method it pays by) or ``paperless``
    delivery on one invoice type."""

    __tablename__ = "enrolments"
    __table_args__ = (UniqueConstraint("login_id", "invoice_type_id", "kind"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    login_id: Mapped[int] = mapped_column(ForeignKey("logins.id"), index=True)
    invoice_type_id: Mapped[int] = mapped_column(ForeignKey("reference_items.id"))
    kind: Mapped[str] = mapped_column(String(16))
    payment_method_id: Mapped[int | None] = mapped_column(ForeignKey("payment_methods.id"))
