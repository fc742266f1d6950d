"""What a field's value may be, checked by the producer while reading, for every format: a value too
long for the target column it is written to, a NUL character (no database text column can hold
one), or any value over ``max_field_chars``, is refused at read time with the field, its length and
the limit — rather than failing a worker's batch later.

The table below names, per entity type, the fields written to a bounded column; the lengths come
from the schema itself, so they cannot drift. A field left out of it is still bounded by
``max_field_chars``, and a worker that meets a value its database refuses isolates that record
(``workers/batch.py``), so nothing stalls if the table misses one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.entities import SIMPLE_REFERENCE_KINDS
from shared.errors import InvalidValue
from shared.lengths import shown
from shared.schema.ledger import Invoice
from shared.schema.portal import Login, PaymentMethod
from shared.schema.services import (
    AccountAttribute,
    AccountPaymentMethod,
    ExtendedAttribute,
    Ticket,
    TicketAttachment,
    TicketTracking,
)
from shared.schema.subscriptions import Customer, Subscription
from shared.schema.target import Account, Contact, ContactPoint, ReferenceItem

_NAMED = {"Name": ReferenceItem.name}
_CONTACT = {"ContactName": Contact.name}
_COLUMNS: dict[str, dict[str, Any]] = {
    **{kind: _NAMED for kind in (*SIMPLE_REFERENCE_KINDS, "TaxCode", "Role")},
    "Currency": {"Code": ReferenceItem.name},
    "Campaign": {"Code": ReferenceItem.name},
    "User": {"Name": Account.name, "DisableReason": Account.disable_reason},
    "ChildAccount": {"Name": Account.name},
    "Contact": {"ContactName": Contact.name, "ContactFirstName": Contact.first_name, "ContactLastName": Contact.last_name,
                "ContactTitle": Contact.title, "ContactCompany": Contact.company},
    "Company": {"Company": Contact.company},
    "ContactEmail": {**_CONTACT, "Email": ContactPoint.value},
    "ContactPhone": {**_CONTACT, "Phone": ContactPoint.value},
    "ContactFax": {**_CONTACT, "Fax": ContactPoint.value},
    "ContactPoint": {**_CONTACT, "Value": ContactPoint.value},
    "CloseInvoice": {"Name": Invoice.name},
    "UserAttributeTaxExempt": {"Certificate": AccountAttribute.certificate},
    "UserExtendedAttribute": {"Name": ExtendedAttribute.name},
    "UserPackageExtendedAttribute": {"Name": ExtendedAttribute.name},
    "UserServiceAttribute": {"Name": ExtendedAttribute.name},
    "Ticket": {"Reference": Ticket.reference, "AssignedTo": Ticket.assigned_to, "Loggedby": Ticket.logged_by,
               "ClosedBy": Ticket.closed_by, "Contactmethod": Ticket.contact_method, "Fromaddress": Ticket.from_address,
               "Lastmodifiedby": Ticket.last_modified_by},
    "TicketTracking": {"Author": TicketTracking.author},
    "TicketAttachment": {"FileName": TicketAttachment.file_name},
    "UserPaymentMethodCreditCard": {"NameOnCard": AccountPaymentMethod.holder, "CardType": AccountPaymentMethod.card_type},
    "UserPaymentMethodACH": {"NameOnAccount": AccountPaymentMethod.holder, "BankName": AccountPaymentMethod.bank_name},
    "Customer": {"name": Customer.name, "company": Customer.company, "email": Customer.email},
    "Subscription": {"subscription_id": Subscription.source_id},
    "Registration": {"account_number": Account.name, "login": Login.login, "name": Login.name, "email": Login.email},
    "Autopay": {"account_number": Account.name, "name_on_card": PaymentMethod.holder,
                "name_on_account": PaymentMethod.holder, "bank_name": PaymentMethod.bank_name,
                "card_type": PaymentMethod.card_type},
    "Paperless": {"account_number": Account.name, "email": Login.email, "name": Login.name},
}


def _length(column: Any) -> tuple[str, int]:
    where = f"{column.class_.__tablename__}.{column.key}"
    return where, int(column.property.columns[0].type.length)


FIELD_LIMITS: dict[str, dict[str, tuple[str, int]]] = {
    entity: {name: _length(column) for name, column in fields.items()} for entity, fields in _COLUMNS.items()
}
"""entity → field → (table.column, longest value it holds)."""

def check_values(entity: str, fields: Mapping[str, str], max_chars: int) -> InvalidValue | None:
    """The first value of a record that cannot be stored, as the error that dead-letters it."""
    limits = FIELD_LIMITS.get(entity, {})
    for name, value in fields.items():
        if "\x00" in value:
            return InvalidValue(f"{name} contains a NUL character (\\x00) at position {value.index(chr(0)) + 1}, "
                                "which no database text column can hold", field=name, value=shown(value),
                                hint="remove the NUL character from the source")
        if len(value) > max_chars:
            return InvalidValue(f"{name} is {len(value):,} characters long; cutover accepts at most {max_chars:,} "
                                "in one field (setting max_field_chars)", field=name, value=shown(value),
                                hint="shorten the value at the source, or raise CUTOVER_MAX_FIELD_CHARS")
        limit = limits.get(name)
        if limit is not None and len(value) > limit[1]:
            return InvalidValue(f"{name} is {len(value):,} characters long; its target column {limit[0]} holds at "
                                f"most {limit[1]:,}", field=name, value=shown(value),
                                hint=f"shorten {name} to {limit[1]} characters at the source")
    return None
