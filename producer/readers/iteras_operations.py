"""The iteras operations: which entity each becomes, its fields and how each field's JSON value is
checked and turned into the canonical text that travels in a message.

Scalars become text (numbers in minor units as whole numbers, dates ISO 8601, booleans
``true``/``false``); objects and lists (addresses, weekdays, periods) become canonical JSON text,
so two records with the same meaning have the same digest whatever their key order."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from producer.readers.json_stream import LongNumber, RepeatedKeys, json_default
from shared.errors import InvalidValue, MissingField, UnknownName
from shared.hints import hint_for

Parse = Callable[[str, Any], str]
"""(field path, JSON value) → canonical text; raises InvalidValue naming the field path."""

INVOICING = ("full", "none", "adjusted_begin", "adjusted_end")
OVERRIDE_TYPES = ("change-delivery-address", "change-billing-address", "pause-delivery", "alternative-delivery")
VACATION_TYPES = ("pause-delivery", "alternative-delivery")
ADDRESS_TYPES = ("change-delivery-address", "change-billing-address", "alternative-delivery")
_DIGITS = re.compile(r"^[0-9]+$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "a whole number", float: "a number with decimals", str: "text", list: "a list",
            dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)


def _shown(value: Any) -> str:
    text = str(value) if isinstance(value, LongNumber) else json.dumps(value, ensure_ascii=False, default=json_default)
    return text if len(text) <= 80 else text[:77] + "..."


def _wrong(path: str, value: Any, wanted: str, hint: str | None = None) -> InvalidValue:
    return InvalidValue(f"{path} is {_kind(value)} ({_shown(value)}), expected {wanted}", field=path,
                        value=_shown(value), hint=hint)


def text(path: str, value: Any) -> str:
    if not isinstance(value, str):
        hint = "write phone numbers and ids as JSON strings, so leading zeros survive" if isinstance(value, int) else None
        raise _wrong(path, value, "text", hint)
    return value


def numeric_id(path: str, value: Any) -> str:
    """A customer id: a JSON number or a string of digits (the seed writes ``"id": "12345"``)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    if isinstance(value, str) and _DIGITS.match(value.strip()) and int(value) > 0:
        return str(int(value))
    raise _wrong(path, value, "a positive whole number or a string of digits",
                 "customer ids are numeric; the billing system keeps them")


def source_id(path: str, value: Any) -> str:
    """A subscription's id in the old system: text or a whole number, compared as text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise _wrong(path, value, "the subscription's id (text or a whole number)")


def minor_units(path: str, value: Any) -> str:
    """Money as integer minor units (``10500`` = 105.00); negative allowed."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    hint = None
    if isinstance(value, float) and math.isfinite(value):
        hint = f"amounts are whole minor units: {value} would be {round(value * 100)} if it meant {value:.2f}"
    raise _wrong(path, value, "a whole number of minor units (10500 = 105.00)", hint)


def count(path: str, value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return str(value)
    raise _wrong(path, value, "a whole number of 1 or more")


def boolean(path: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    raise _wrong(path, value, "true or false")


def day(path: str, value: Any) -> str:
    """An ISO date; a time and offset, if given, are dropped: periods and overrides are whole days."""
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            try:
                return datetime.fromisoformat(value.strip()).date().isoformat()
            except ValueError:
                pass
    raise _wrong(path, value, "an ISO 8601 date like 2019-12-24")


def moment(path: str, value: Any) -> str:
    """An ISO date or date-time; with an offset it is stored in UTC."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            parsed = None
        if parsed is not None:
            if parsed.tzinfo is not None:
                parsed = parsed.astimezone(UTC).replace(tzinfo=None)
            return parsed.isoformat()
    raise _wrong(path, value, "an ISO 8601 date or date-time like 2019-12-24 or 2019-12-24T10:00:00+01:00")


def tax_rate(path: str, value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        rate = Decimal(str(value))
        if 0 <= rate < 1:
            return str(rate)
        raise InvalidValue(f"{path} {value} is not a fraction below 1", field=path, value=str(value),
                           hint="a tax rate is a fraction: 0.25 for 25%")
    raise _wrong(path, value, "a number such as 0.25")


def one_of(*allowed: str) -> Parse:
    def parse(path: str, value: Any) -> str:
        if isinstance(value, str) and value in allowed:
            return value
        raise InvalidValue(f"{path} {_shown(value)} is not one of {', '.join(allowed)}", field=path, value=_shown(value),
                           hint=hint_for(value, allowed) if isinstance(value, str) else None)
    return parse


def _canonical(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _object(path: str, value: Any, fields: dict[str, Parse]) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _wrong(path, value, "an object")
    refuse_repeated_keys(value, f"{path}.")
    out: dict[str, str] = {}
    for name, item in value.items():
        parse = fields.get(name)
        if parse is None:
            raise UnknownName(f"{path} has no field {name!r}", field=f"{path}.{name}", value=name,
                              hint=hint_for(name, fields) or f"{path} takes {', '.join(fields)}")
        if item is not None:
            out[name] = parse(f"{path}.{name}", item)
    return out


def refuse_repeated_keys(value: dict[str, Any], prefix: str = "") -> None:
    """JSON lets an object write a key twice and keeps the last value; a migration must not drop
    the other one silently."""
    if isinstance(value, RepeatedKeys):
        names = ", ".join(repr(k) for k in value.repeated)
        raise InvalidValue(f"{prefix}{value.repeated[0]} is written more than once in one object ({names})",
                           field=f"{prefix}{value.repeated[0]}", value=names, hint="keep one value per field")


def country(path: str, value: Any) -> str:
    code = text(path, value)
    if not _COUNTRY.match(code):
        raise InvalidValue(f"{path} {code!r} is not a two-letter country code", field=path, value=code,
                           hint="ISO 3166 alpha-2, upper case: DK, SE, DE")
    return code


_ADDRESS: dict[str, Parse] = {"name": text, "company": text, "address": text, "country": country}


def address(path: str, value: Any) -> str:
    return _canonical(_object(path, value, _ADDRESS))


def weekdays(path: str, value: Any) -> str:
    if not isinstance(value, list) or not value:
        raise _wrong(path, value, "a list of weekdays, 1 (Monday) to 7 (Sunday)")
    days: set[int] = set()
    for index, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, int) or not 1 <= item <= 7:
            raise InvalidValue(f"{path}[{index}] {_shown(item)} is not a weekday", field=f"{path}[{index}]",
                               value=_shown(item), hint="weekdays run 1 (Monday) to 7 (Sunday)")
        days.add(item)
    return _canonical(sorted(days))


_EXTERNAL: dict[str, Parse] = {
    "invoiced": minor_units, "credited": minor_units, "paid": minor_units, "refunded": minor_units,
    "currency": text, "tax_rate": tax_rate,
}
_PERIOD: dict[str, Parse] = {
    "campaign": text, "begin": day, "end": day, "invoicing": one_of(*INVOICING), "renewed": boolean,
    "remaining_assignments": count, "external_invoicing": lambda p, v: _canonical(_object(p, v, _EXTERNAL)),
}


def periods(path: str, value: Any) -> str:
    """Historical periods, each checked field by field; the rules between periods (overlap, which
    kind of campaign allows ``end``) need the campaigns and are the loader's."""
    if not isinstance(value, list):
        raise _wrong(path, value, "a list of periods")
    out = []
    for index, item in enumerate(value):
        where = f"{path}[{index}]"
        period: dict[str, Any] = _object(where, item, _PERIOD)
        if "begin" not in period:
            raise MissingField(f"{where} has no begin", field=f"{where}.begin", value="",
                               hint="every historical period needs its begin date")
        if "external_invoicing" in period:
            period["external_invoicing"] = json.loads(period["external_invoicing"])
        out.append(period)
    return _canonical(out)


@dataclass(frozen=True)
class Operation:
    """One operation: its name, the entity it loads as, its fields and the ones it cannot do without."""

    name: str
    entity: str
    fields: dict[str, Parse]
    required: tuple[str, ...] = ()


OPERATIONS: dict[str, Operation] = {op.name: op for op in (
    Operation("createcustomer", "Customer", {
        "id": numeric_id, "created": moment, "name": text, "company": text, "email": text, "phone": text,
        "address": address,
    }),
    Operation("createsubscription", "Subscription", {
        "id": numeric_id, "subscription_id": source_id, "campaign": text, "period_begin": day, "end": day,
        "remaining_assignments": count, "invoicing": one_of(*INVOICING), "renewed": boolean, "periods": periods,
    }, required=("id", "subscription_id", "campaign")),
    Operation("createpayment", "CustomerPayment", {
        "id": numeric_id, "amount": minor_units, "currency": text, "method": text,
    }, required=("id", "amount", "currency", "method")),
    Operation("createcustomeroverride", "CustomerOverride", {
        "id": numeric_id, "override_type": one_of(*OVERRIDE_TYPES), "begin": day, "end": day,
        "subscription_id": source_id, "address": address, "weekdays": weekdays,
    }, required=("id", "override_type", "begin")),
)}
