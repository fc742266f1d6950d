"""Field checks of the csv format that need no database: card numbers (Luhn), ACH routing numbers
(the ABA checksum), expiry dates, payment method and account type names.

Messages never contain a card or bank account number: they name the field and what is wrong."""

from __future__ import annotations

import re

from shared.errors import InvalidValue

PAYMENT_METHODS = {"card": "card", "credit card": "card", "creditcard": "card", "ach": "ach", "bank": "ach",
                   "bank account": "ach", "eft": "ach"}
ACCOUNT_TYPES = {"checking": "Checking", "savings": "Savings"}
_SEPARATORS = re.compile(r"[\s-]")


def digits_only(field: str, text: str, *, lengths: range, what: str) -> str:
    """Digits with spaces and dashes removed; the value itself is never echoed (it is a secret)."""
    digits = _SEPARATORS.sub("", text)
    if not digits.isdigit() or not digits.isascii():
        raise InvalidValue(f"{field} holds characters other than digits, spaces and dashes", field=field,
                           value=text, hint=f"a {what} is digits only")
    if len(digits) not in lengths:
        raise InvalidValue(f"{field} has {len(digits)} digits; a {what} has {lengths.start}–{lengths.stop - 1}",
                           field=field, value=text)
    return digits


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check every payment card number carries in its last digit."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def card_number(field: str, text: str) -> str:
    digits = digits_only(field, text, lengths=range(12, 20), what="card number")
    if not luhn_ok(digits):
        raise InvalidValue(f"{field} fails the Luhn check (a digit is wrong or two are swapped)", field=field,
                           value=text, hint="check the number against the source system")
    return digits


def routing_ok(digits: str) -> bool:
    """ABA routing number checksum: 3·(d1+d4+d7) + 7·(d2+d5+d8) + (d3+d6+d9) ≡ 0 (mod 10)."""
    d = [int(c) for c in digits]
    return (3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + (d[2] + d[5] + d[8])) % 10 == 0


def routing_number(field: str, text: str) -> str:
    digits = digits_only(field, text, lengths=range(9, 10), what="routing number")
    if not routing_ok(digits):
        raise InvalidValue(f"{field} {digits} fails the ABA routing number checksum", field=field, value=digits,
                           hint="a US routing number is 9 digits whose weighted sum (3, 7, 1) is a multiple of 10")
    return digits


def bank_account_number(field: str, text: str) -> str:
    return digits_only(field, text, lengths=range(4, 18), what="bank account number")


def payment_method(field: str, text: str) -> str:
    found = PAYMENT_METHODS.get(text.strip().lower())
    if found is None:
        raise InvalidValue(f"{field} {text!r} is not a payment method", field=field, value=text, hint="Card or ACH")
    return found


def account_type(field: str, text: str) -> str:
    found = ACCOUNT_TYPES.get(text.strip().lower())
    if found is None:
        raise InvalidValue(f"{field} {text!r} is not a bank account type", field=field, value=text,
                           hint="Checking or Savings")
    return found


def expiry_month(field: str, text: str) -> str:
    if not (text.strip().isascii() and text.strip().isdigit()) or not 1 <= int(text) <= 12:
        raise InvalidValue(f"{field} {text!r} is not a month", field=field, value=text, hint="1 to 12")
    return str(int(text))


def expiry_year(field: str, text: str) -> str:
    value = text.strip()
    if not (value.isascii() and value.isdigit()) or len(value) not in (2, 4):
        raise InvalidValue(f"{field} {text!r} is not a year", field=field, value=text, hint="two or four digits")
    return str(2000 + int(value)) if len(value) == 2 else value
