"""Target tables: what the billing system reads after the migration."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shared.schema.base import Base


class ReferenceItem(Base):
    """Configured data (owners, roles, tax codes, contact point types, ...), one row per kind+name.
    Kind-specific values (tax rates as exact decimal strings, campaign length) sit in ``attributes``."""

    __tablename__ = "reference_items"
    __table_args__ = (UniqueConstraint("kind", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Account(Base):
    """A customer account (the seed's ``User``), optionally under a parent account."""

    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("owner_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("reference_items.id"))
    name: Mapped[str] = mapped_column(String(255), index=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role_id: Mapped[int | None] = mapped_column(ForeignKey("reference_items.id"))
    culture_id: Mapped[int | None] = mapped_column(ForeignKey("reference_items.id"))
    currency_id: Mapped[int | None] = mapped_column(ForeignKey("reference_items.id"))
    language_id: Mapped[int | None] = mapped_column(ForeignKey("reference_items.id"))
    status_type_id: Mapped[int | None] = mapped_column(ForeignKey("reference_items.id"))
    tax_code_id: Mapped[int | None] = mapped_column(ForeignKey("reference_items.id"))
    bill_group_id: Mapped[int | None] = mapped_column(ForeignKey("reference_items.id"))
    credit_rating_id: Mapped[int | None] = mapped_column(ForeignKey("reference_items.id"))
    bill_day: Mapped[int | None] = mapped_column(Integer)
    disable_reason: Mapped[str | None] = mapped_column(String(255))
    created_date: Mapped[datetime | None] = mapped_column(DateTime)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)


class Contact(Base):
    """A person on an account."""

    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    name: Mapped[str] = mapped_column(String(255))
    first_name: Mapped[str | None] = mapped_column(String(255))
    last_name: Mapped[str | None] = mapped_column(String(255))
    title: Mapped[str | None] = mapped_column(String(255))
    contact_type_id: Mapped[int | None] = mapped_column(ForeignKey("reference_items.id"))
    company: Mapped[str | None] = mapped_column(String(255))


class ContactPoint(Base):
    """One way to reach a contact (email, phone, fax, or any configured contact point type)."""

    __tablename__ = "contact_points"
    __table_args__ = (UniqueConstraint("contact_id", "point_type_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    point_type_id: Mapped[int] = mapped_column(ForeignKey("reference_items.id"))
    value: Mapped[str] = mapped_column(String(512))
    contact_type_id: Mapped[int | None] = mapped_column(ForeignKey("reference_items.id"))
