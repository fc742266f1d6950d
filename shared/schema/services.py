"""Target tables of engageip services, account attributes, tickets and payment methods.

Attachments are stored once by content (``attachment_blobs``, keyed by SHA-256) and referenced by
``ticket_attachments``; card and bank account numbers only as vault ciphertext plus last four."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shared.schema.base import Base
from shared.schema.control import BigId
from shared.schema.money import Money


class UserPackage(Base):
    """A package on an account (it bills on the account's cycle; NextBillDate when it next bills)."""

    __tablename__ = "user_packages"
    __table_args__ = (UniqueConstraint("account_id", "package_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    package_id: Mapped[int] = mapped_column(ForeignKey("reference_items.id"))
    next_bill_date: Mapped[datetime | None] = mapped_column(DateTime)


class UserService(Base):
    """A service of a user package (optional or not)."""

    __tablename__ = "user_services"
    __table_args__ = (UniqueConstraint("user_package_id", "service_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    user_package_id: Mapped[int] = mapped_column(ForeignKey("user_packages.id"), index=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("reference_items.id"))
    optional: Mapped[bool] = mapped_column(Boolean, default=False)


class PackageDiscount(Base):
    """A discount attached to a customer's package (or one service of it): ``Fixed`` amount off,
    a ``Price`` that replaces the price, or a ``Percent`` off (0–100)."""

    __tablename__ = "package_discounts"
    __table_args__ = (UniqueConstraint("user_package_id", "user_service_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_package_id: Mapped[int] = mapped_column(ForeignKey("user_packages.id"), index=True)
    user_service_id: Mapped[int | None] = mapped_column(ForeignKey("user_services.id"))
    discount_type: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Decimal] = mapped_column(Money())


class AccountAttribute(Base):
    """One attribute of an account: ``expiry_date`` (value: ISO date-time), ``tax_class``,
    ``tax_code`` (reference_id), or ``tax_exempt`` (one per tax code, with its certificate)."""

    __tablename__ = "account_attributes"
    __table_args__ = (UniqueConstraint("account_id", "kind", "key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(255), default="")
    """Empty for one-per-account attributes; the tax code's name for an exemption."""
    value: Mapped[str | None] = mapped_column(Text)
    reference_id: Mapped[int | None] = mapped_column(ForeignKey("reference_items.id"))
    certificate: Mapped[str | None] = mapped_column(String(255))


class Note(Base):
    """A note on an account, of a configured note type."""

    __tablename__ = "notes"
    __table_args__ = (UniqueConstraint("source_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source_key: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    note_type_id: Mapped[int] = mapped_column(ForeignKey("reference_items.id"))
    note: Mapped[str] = mapped_column(Text)
    noted_at: Mapped[datetime | None] = mapped_column(DateTime)


class ProfileAnswer(Base):
    """An answer to a profile question, for the account or for one of its user services."""

    __tablename__ = "profile_answers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    question_id: Mapped[int] = mapped_column(ForeignKey("reference_items.id"))
    user_service_id: Mapped[int | None] = mapped_column(ForeignKey("user_services.id"), index=True)
    answer: Mapped[str | None] = mapped_column(Text)


class ExtendedAttribute(Base):
    """A named value on an account, a user package or a user service (``owner_kind``)."""

    __tablename__ = "extended_attributes"
    __table_args__ = (UniqueConstraint("owner_kind", "owner_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    owner_kind: Mapped[str] = mapped_column(String(16))
    owner_id: Mapped[int] = mapped_column(BigId)
    name: Mapped[str] = mapped_column(String(255))
    value: Mapped[str | None] = mapped_column(Text)


class Ticket(Base):
    """A support ticket, keyed by its id in the old system."""

    __tablename__ = "tickets"
    __table_args__ = (UniqueConstraint("source_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source_id: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    reference: Mapped[str | None] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    resolution: Mapped[str | None] = mapped_column(Text)
    assigned_to: Mapped[str | None] = mapped_column(String(255))
    logged_by: Mapped[str | None] = mapped_column(String(255))
    logged_at: Mapped[datetime] = mapped_column(DateTime)
    time_spent: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(8))
    priority_id: Mapped[int | None] = mapped_column(ForeignKey("reference_items.id"))
    closed_by: Mapped[str | None] = mapped_column(String(255))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime)
    category_id: Mapped[int | None] = mapped_column(ForeignKey("reference_items.id"))
    contact_method: Mapped[str | None] = mapped_column(String(255))
    from_address: Mapped[str | None] = mapped_column(String(320))
    total_time_spent: Mapped[int | None] = mapped_column(Integer)
    current_time_spent: Mapped[int | None] = mapped_column(Integer)
    last_modified_by: Mapped[str | None] = mapped_column(String(255))
    hidden_resolution: Mapped[str | None] = mapped_column(Text)
    show_to_user: Mapped[bool] = mapped_column(Boolean, default=False)
    due_at: Mapped[datetime | None] = mapped_column(DateTime)


class TicketTracking(Base):
    """An entry in a ticket's history (inline comments, appended text)."""

    __tablename__ = "ticket_tracking"
    __table_args__ = (UniqueConstraint("source_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source_key: Mapped[str] = mapped_column(String(64))
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    tracked_at: Mapped[datetime] = mapped_column(DateTime)
    author: Mapped[str | None] = mapped_column(String(255))
    text: Mapped[str] = mapped_column(Text)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)


class AttachmentBlob(Base):
    """Attachment bytes, stored once per content (the producer writes them before any message)."""

    __tablename__ = "attachment_blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigId)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class TicketAttachment(Base):
    """A file attached to a ticket: its name and the content it points at (``store`` says where the
    bytes are: ``database`` → ``attachment_blobs``; ``files`` → the content-addressed file store)."""

    __tablename__ = "ticket_attachments"
    __table_args__ = (UniqueConstraint("ticket_id", "file_name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    file_name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigId)
    store: Mapped[str] = mapped_column(String(16))


class AccountPaymentMethod(Base):
    """How an account pays: cash, check, a card or a bank account (ACH). Numbers are stored only
    as vault ciphertext (``secret``) plus their last four digits."""

    __tablename__ = "account_payment_methods"
    __table_args__ = (UniqueConstraint("source_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source_key: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    secret: Mapped[str | None] = mapped_column(Text)
    last4: Mapped[str | None] = mapped_column(String(4))
    holder: Mapped[str | None] = mapped_column(String(255))
    card_type: Mapped[str | None] = mapped_column(String(32))
    expiry_month: Mapped[int | None] = mapped_column(Integer)
    expiry_year: Mapped[int | None] = mapped_column(Integer)
    bank_name: Mapped[str | None] = mapped_column(String(255))
    routing_number: Mapped[str | None] = mapped_column(String(9))
    account_type: Mapped[str | None] = mapped_column(String(16))
