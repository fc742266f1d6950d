"""Typed field values for text formats: dates in the run's order, booleans, integers, decimals.
Each parser returns the canonical text form that travels in messages, or raises InvalidValue."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from shared.errors import InvalidValue

_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp][Mm])?)?$")


def parse_date(field: str, text: str, *, day_first: bool) -> str:
    """``M/D/YYYY`` or ``M/D/YYYY h:mm:ss AM|PM`` (``D/M/YYYY`` when day_first) → ISO 8601.
    An impossible date is an error, never rolled over."""
    try:
        return _iso_date(text, day_first)
    except _NotADate as refused:
        message, hint = refused.args
        raise InvalidValue(f"{field} {text!r}{message}", field=field, value=text, hint=hint) from None


class _NotADate(ValueError):
    """Why a text is no date (what follows the value in the message, and a hint); ``parse_date`` names
    the field and the value."""


@lru_cache(maxsize=4096)
def _iso_date(text: str, day_first: bool) -> str:
    """The conversion itself, remembered: a ledger repeats the same few dates on most of its lines."""
    match = _DATE.match(text.strip())
    order = "D/M/YYYY" if day_first else "M/D/YYYY"
    if not match:
        raise _NotADate(" is not a date", f"expected {order} or {order} h:mm:ss AM|PM")
    first, second, year, hour, minute, sec, ampm = match.groups()
    month, day = (int(second), int(first)) if day_first else (int(first), int(second))
    try:
        parsed = date(int(year), month, day)
    except ValueError:
        raise _NotADate(f" is not a real date ({order}: month {month}, day {day})",
                        f"dates read {order} in this run") from None
    if hour is None:
        return parsed.isoformat()
    h = int(hour)
    if ampm:
        if not 1 <= h <= 12:
            raise _NotADate(f": hour {h} with {ampm.upper()}", None)
        h = h % 12 + (12 if ampm.upper() == "PM" else 0)
    try:
        return datetime(parsed.year, parsed.month, parsed.day, h, int(minute), int(sec or 0)).isoformat()
    except ValueError:
        raise _NotADate(" has an impossible time", None) from None


def parse_bool(field: str, text: str) -> str:
    folded = text.strip().lower()
    if folded in ("true", "1"):
        return "true"
    if folded in ("false", "0"):
        return "false"
    raise InvalidValue(f"{field} {text!r} is not a boolean", field=field, value=text, hint="use True/False or 1/0")


def parse_int(field: str, text: str) -> str:
    try:
        return str(int(text.strip()))
    except ValueError:
        raise InvalidValue(f"{field} {text!r} is not a whole number", field=field, value=text) from None


def parse_decimal(field: str, text: str) -> str:
    return str(_decimal(field, text))


def _decimal(field: str, text: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise InvalidValue(f"{field} {text!r} is not a decimal number", field=field, value=text) from None
    if not value.is_finite():
        raise InvalidValue(f"{field} {text!r} is not a finite number", field=field, value=text)
    return value


MONEY_PLACES = 4
MONEY_LIMIT = Decimal(10) ** 14
"""Largest magnitude (exclusive) a money column holds on every database (SQLite keeps whole
ten-thousandths in 64 bits, about 9.2 × 10^14)."""


def parse_money(field: str, text: str) -> str:
    """A signed amount with at most four decimal places (the target keeps four; more would be
    rounded, and money is never rounded silently)."""
    value = _decimal(field, text)
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MONEY_PLACES:
        raise InvalidValue(f"{field} {text!r} has more than {MONEY_PLACES} decimal places", field=field, value=text,
                           hint=f"amounts are kept to {MONEY_PLACES} places; round it in the source")
    if abs(value) >= MONEY_LIMIT:
        raise InvalidValue(f"{field} {text!r} is too large for an amount", field=field, value=text,
                           hint=f"amounts must be below {MONEY_LIMIT:,.0f}")
    return str(value)


def parse_amount(field: str, text: str) -> str:
    """Absolute amounts: the format gives signs by record type, so a negative value is an error."""
    value = parse_money(field, text)
    if value.startswith("-"):
        raise InvalidValue(f"{field} {text!r} is negative", field=field, value=text,
                           hint="amounts are absolute; the record type gives the sign")
    return value


def parse_text(field: str, text: str) -> str:
    return text

