"""Contacts and their contact points (email, phone, fax, any configured type) and the account's
company, which the seed sets on the account's contacts."""

from __future__ import annotations

from sqlalchemy import select, update

from shared.emails import check_email
from shared.errors import UnknownReference
from shared.schema.target import Contact, ContactPoint
from workers.context import LoadContext, Loaded
from workers.loaders import loader

EMAIL_POINT_TYPE = "Email Address"
FAX_POINT_TYPE = "Fax"


@loader("Contact")
def load_contact(ctx: LoadContext) -> Loaded:
    account = ctx.account("User")
    name = ctx.require("ContactName")
    values = {
        "first_name": ctx.get("ContactFirstName"), "last_name": ctx.get("ContactLastName"),
        "title": ctx.get("ContactTitle"), "contact_type_id": ctx.optional_ref("ContactType", "ContactType"),
        "company": ctx.get("ContactCompany"),
    }
    existing = _existing_contact(ctx, account.id, name)
    if existing is not None:
        def apply() -> None:
            for column, value in values.items():
                setattr(existing, column, value)
        return ctx.existing(existing.id, apply, same=all(getattr(existing, c) == v for c, v in values.items()))
    contact = Contact(account_id=account.id, name=name, **values)
    ctx.session.add(contact)
    if ctx.batch is not None:
        ctx.batch.contacts[(account.id, name)] = contact
    return Loaded(row=contact)


def _existing_contact(ctx: LoadContext, account_id: int, name: str) -> Contact | None:
    """In a batch, an account's contacts are fetched once (new ones are added as they are made)."""
    if ctx.batch is not None:
        ctx.batch.prefetch_contacts(ctx.session, [account_id])
        return ctx.batch.contacts.get((account_id, name))
    return ctx.session.scalar(select(Contact).where(Contact.account_id == account_id, Contact.name == name))


def _point(ctx: LoadContext, contact: Contact, point_type: str, type_field: str, value: str) -> Loaded:
    point_type_id = ctx.ref("ContactPointType", type_field, point_type)
    contact_type_id = ctx.optional_ref("ContactType", "ContactType")
    existing = _existing_point(ctx, contact.id, point_type_id)
    if existing is not None:
        def apply() -> None:
            existing.value, existing.contact_type_id = value, contact_type_id
        return ctx.existing(existing.id, apply, same=existing.value == value)
    point = ContactPoint(contact_id=contact.id, point_type_id=point_type_id, value=value, contact_type_id=contact_type_id)
    ctx.session.add(point)
    if ctx.batch is not None:
        ctx.batch.points[(contact.id, point_type_id)] = point
    return Loaded(row=point)


def _existing_point(ctx: LoadContext, contact_id: int, point_type_id: int) -> ContactPoint | None:
    if ctx.batch is not None:
        ctx.batch.prefetch_points(ctx.session, [contact_id])
        return ctx.batch.points.get((contact_id, point_type_id))
    return ctx.session.scalar(
        select(ContactPoint).where(ContactPoint.contact_id == contact_id, ContactPoint.point_type_id == point_type_id))


@loader("ContactEmail")
def load_contact_email(ctx: LoadContext) -> Loaded:
    email = ctx.require("Email")
    check_email(email)
    return _point(ctx, ctx.contact(), EMAIL_POINT_TYPE, "ContactPointType", email)


@loader("ContactPhone")
def load_contact_phone(ctx: LoadContext) -> Loaded:
    return _point(ctx, ctx.contact(), ctx.require("ContactPointType"), "ContactPointType", ctx.require("Phone"))


@loader("ContactFax")
def load_contact_fax(ctx: LoadContext) -> Loaded:
    return _point(ctx, ctx.contact(), FAX_POINT_TYPE, "ContactPointType", ctx.require("Fax"))


@loader("ContactPoint")
def load_contact_point(ctx: LoadContext) -> Loaded:
    if ctx.get("Owner"):
        ctx.ref("Owner", "Owner")
    contact_id = ctx.get("ContactID")
    if contact_id is not None:
        contact = ctx.session.get(Contact, int(contact_id))
        if contact is None:
            raise UnknownReference(f"contact id {contact_id} not found", field="ContactID", value=contact_id)
    else:
        contact = ctx.contact()
    return _point(ctx, contact, ctx.require("ContactPointType"), "ContactPointType", ctx.require("Value"))


@loader("Company")
def load_company(ctx: LoadContext) -> Loaded:
    """Sets the company on every contact of the account; a second, different Company record for the
    same account is a conflict (or, with --upsert, the newer value)."""
    account = ctx.account("User")
    company = ctx.require("Company")

    def apply() -> None:
        ctx.session.execute(update(Contact).where(Contact.account_id == account.id).values(company=company))

    if ctx.previous_load() is not None:
        return ctx.existing(account.id, apply)
    apply()
    return Loaded(account.id)
