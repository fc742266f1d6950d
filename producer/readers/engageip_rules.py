"""Rules one engageip record can settle on its own, after its attributes are typed: discount types
and ranges, ticket status, and payment-method numbers (Luhn, ABA routing checksum) — checked here,
while the producer still holds them in clear, before they are encrypted. Messages never contain a
card or bank account number."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from producer.readers import csv_values
from shared.errors import InvalidValue

DISCOUNT_TYPES = ("Fixed", "Price", "Percent")
TICKET_STATUSES = ("Open", "Closed")


def _one_of(field: str, value: str, allowed: tuple[str, ...]) -> str:
    for name in allowed:
        if value.casefold() == name.casefold():
            return name
    raise InvalidValue(f"{field} {value!r} is not one of {', '.join(allowed)}", field=field, value=value)


def _discount(fields: dict[str, str]) -> dict[str, str]:
    kind = _one_of("DiscountType", fields["DiscountType"], DISCOUNT_TYPES)
    amount = Decimal(fields["Amount"])
    if amount < 0:
        raise InvalidValue(f"a discount Amount cannot be negative ({amount})", field="Amount", value=fields["Amount"],
                           hint="give the discount as a positive amount or percentage")
    if kind == "Percent" and amount > 100:
        raise InvalidValue(f"a Percent discount of {amount} is over 100", field="Amount", value=fields["Amount"],
                           hint="a percentage discount is 0 to 100")
    return {**fields, "DiscountType": kind}


def _ticket(fields: dict[str, str]) -> dict[str, str]:
    return {**fields, "Status": _one_of("Status", fields["Status"], TICKET_STATUSES)}


def _expiry(fields: dict[str, str], month: str, year: str) -> dict[str, str]:
    return {**fields, month: csv_values.expiry_month(month, fields[month]), year: csv_values.expiry_year(year, fields[year])}


def _credit_card(fields: dict[str, str]) -> dict[str, str]:
    number = csv_values.card_number("CardNumber", fields["CardNumber"])
    return {**_expiry(fields, "ExpiryMonth", "ExpiryYear"), "CardNumber": number, "Last4": number[-4:]}


def _ach(fields: dict[str, str]) -> dict[str, str]:
    number = csv_values.bank_account_number("AccountNumber", fields["AccountNumber"])
    return {**fields, "RoutingNumber": csv_values.routing_number("RoutingNumber", fields["RoutingNumber"]),
            "AccountNumber": number, "AccountType": csv_values.account_type("AccountType", fields["AccountType"]),
            "Last4": number[-4:]}


RULES: dict[str, Callable[[dict[str, str]], dict[str, str]]] = {
    "UserPackageAttributeDiscount": _discount,
    "Ticket": _ticket,
    "UserPaymentMethodCreditCard": _credit_card,
    "UserPaymentMethodACH": _ach,
}
