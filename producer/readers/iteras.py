"""Reader for iteras JSON operations (a JSON array or JSON Lines), streamed.

Each operation becomes one record of the entity its ``operation`` names (``createcustomer`` →
``Customer``…), whatever order the file is in: waves, not file order, decide when it loads. What
one record can tell about itself is checked here (types, unknown fields with a near-miss hint,
required fields, begin ≤ end of an override); what needs the target (campaigns, customers,
period rules that depend on the campaign's kind) is the loader's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from producer.readers.base import RawRecord
from producer.readers.iteras_operations import (
    ADDRESS_TYPES,
    OPERATIONS,
    VACATION_TYPES,
    Operation,
    numeric_id,
    refuse_repeated_keys,
    source_id,
)
from producer.readers.json_stream import TOO_DEEP, JsonValue, LongNumber, json_default, read_values
from shared.derived import MANUAL_VERIFICATION
from shared.emails import check_email
from shared.errors import InvalidValue, MissingField, Position, RecordError, RuleViolation, UnknownName
from shared.hints import hint_for

if TYPE_CHECKING:
    from producer.formats import IterasOptions

UNREADABLE = "(not JSON)"
"""Entity name of a JSON Lines line that is not JSON: it has no operation to route it by."""
DEFAULTS = {"Subscription": {"invoicing": "full", "renewed": "false"}}


class IterasReader:
    def read(self, path: Path, options: IterasOptions) -> Iterator[RawRecord]:
        for item in read_values(path, lenient=options.lenient_json):
            try:
                record = self._record(path, item, options)
            except RecursionError:  # a value just under the decoder's depth limit, too deep to show again
                record = RawRecord(UNREADABLE, {}, Position(str(path), item.line, item.column),
                                   InvalidValue(f"the operation has {TOO_DEEP}"))
            yield record

    def _record(self, path: Path, item: JsonValue, options: IterasOptions) -> RawRecord:
        position = Position(str(path), item.line, item.column)
        if item.error is not None:
            where = Position(str(path), item.error_line, item.error_column)
            return RawRecord(UNREADABLE, {}, where, InvalidValue(f"line {item.error_line}, column {item.error_column}: "
                                                                 f"invalid JSON: {item.error}"))
        value = item.value
        if not isinstance(value, dict):
            found = "a number" if isinstance(value, LongNumber) else type(value).__name__
            return RawRecord(UNREADABLE, {}, position, InvalidValue(
                f"an operation must be a JSON object, found {found}: {_json_text(value)[:60]}"))
        shown = _as_written(value)
        name = value.get("operation")
        operation = OPERATIONS.get(name) if isinstance(name, str) else None
        if operation is None:
            return RawRecord(str(name) if isinstance(name, str) else UNREADABLE, shown, position, _unknown_operation(name))
        try:
            if item.long_numbers:
                _refuse_long_numbers(value)
            fields = _fields(operation, value)
            _check_record(operation.entity, fields)
        except RecordError as error:
            return RawRecord(operation.entity, shown, position, error)
        marked = operation.entity == "Subscription" and options.manual_invoice_verification
        return RawRecord(operation.entity, fields, position, derived={MANUAL_VERIFICATION: "true"} if marked else {})


def _as_written(value: dict[str, Any]) -> dict[str, str]:
    """A refused record's fields for its dead letter, as written; ids in their canonical form, so a
    child naming customer ``42`` is blocked behind a refused ``"0042"``, not dead."""
    shown = {str(k): v if isinstance(v, str) else _json_text(v) for k, v in value.items()}
    for name, canonical in (("id", numeric_id), ("subscription_id", source_id)):
        try:
            shown[name] = canonical(name, value[name])
        except (KeyError, RecordError):
            pass
    return shown


_AS_WRITTEN = json.JSONEncoder(ensure_ascii=False, default=json_default)


def _json_text(value: Any) -> str:
    """A value as JSON text; an over-long integer by its start and length (not as a JSON string)."""
    return str(value) if isinstance(value, LongNumber) else _AS_WRITTEN.encode(value)


def _refuse_long_numbers(value: dict[str, Any]) -> None:
    """Refuse the record for its first integer too long to convert, naming its path
    (``periods[1].remaining_assignments``). Iterative: the value may be nested hundreds deep."""
    stack: list[tuple[str, Any]] = [(str(k), v) for k, v in reversed(value.items())]
    while stack:
        path, item = stack.pop()
        if isinstance(item, LongNumber):
            raise InvalidValue(f"{path} is a number of {item.digits:,} digits: more than any id or amount can hold",
                               field=path, value=str(item), hint="the file is damaged where this number is written")
        if isinstance(item, dict):
            stack.extend((f"{path}.{k}", v) for k, v in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend((f"{path}[{n}]", v) for n, v in reversed(list(enumerate(item))))


def _unknown_operation(name: Any) -> RecordError:
    if name is None:
        return MissingField("the object has no \"operation\"", field="operation", value="",
                            hint=f"one of {', '.join(OPERATIONS)}")
    return UnknownName(f"unknown operation {json.dumps(name)}", field="operation", value=str(name),
                       hint=hint_for(str(name), OPERATIONS) or f"one of {', '.join(OPERATIONS)}")


def _fields(operation: Operation, value: dict[str, Any]) -> dict[str, str]:
    refuse_repeated_keys(value)
    fields = dict(DEFAULTS.get(operation.entity, {}))
    for name, item in value.items():
        if name == "operation":
            continue
        parse = operation.fields.get(name)
        if parse is None:
            raise UnknownName(f"{operation.name} has no field {name!r}", field=name, value=name,
                              hint=hint_for(name, operation.fields) or f"fields: {', '.join(operation.fields)}")
        if item is not None:
            fields[name] = parse(name, item)
    for name in operation.required:
        if not fields.get(name):
            raise MissingField(f"{operation.name} needs {name}", field=name, value="")
    return fields


def _check_record(entity: str, fields: dict[str, str]) -> None:
    """Rules one record can settle on its own."""
    if entity == "Customer":
        if not fields.get("name", "").strip() and not fields.get("company", "").strip():
            raise MissingField("createcustomer needs a name or a company", field="name", value="")
        if fields.get("email"):
            check_email(fields["email"], "email")
    elif entity == "CustomerOverride":
        kind = fields["override_type"]
        if kind in VACATION_TYPES and not fields.get("subscription_id"):
            raise MissingField(f"a {kind} override needs subscription_id", field="subscription_id", value="",
                               hint="vacations belong to one subscription of the customer")
        if kind in ADDRESS_TYPES and fields.get("address", "{}") == "{}":
            raise MissingField(f"a {kind} override needs the address to change to", field="address", value="")
        if fields.get("end") and fields["end"] < fields["begin"]:
            raise RuleViolation(f"override ends ({fields['end']}) before it begins ({fields['begin']})", field="end",
                                value=fields["end"], hint="begin must be on or before end")
