"""Reader for the csv format (the seed's Customer Import Tool): a CSV file read through a mapping
profile, one record per row, of the entity the profile's import type names.

Streaming (``csv`` over the file's lines, decoded by ``producer.readers.text`` so a byte the
encoding refuses is named by its own line): a quoted cell may span lines; a row with the wrong
number of cells is that row's error. What stops the import — the file cannot be decoded, a header
the profile maps is not in the file — is a SourceError (blocking)."""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from producer.readers import csv_values
from producer.readers.base import RawRecord
from producer.readers.csv_profile import REQUIRED, Profile
from producer.readers.text import MAX_LINE, DecodedText, LineTooLong, Undecodable
from shared.derived import CREATE_MISSING
from shared.emails import check_email
from shared.errors import ConfigError, InvalidValue, MissingField, Position, RecordError, SourceError
from shared.hints import hint_for

if TYPE_CHECKING:
    from producer.formats import CsvOptions

ENTITY_OF = {"registration": "Registration", "autopay": "Autopay", "paperless": "Paperless"}
CARD_REQUIRED = ("card_number", "card_expiry_month", "card_expiry_year", "name_on_card")
ACH_REQUIRED = ("routing_number", "bank_account_number", "bank_account_type", "name_on_account")
CARD_GROUP = (*CARD_REQUIRED, "card_type")
ACH_GROUP = (*ACH_REQUIRED, "bank_name")
_CHECKS: dict[str, Callable[[str, str], str]] = {
    "payment_method": csv_values.payment_method, "card_number": csv_values.card_number,
    "card_expiry_month": csv_values.expiry_month, "card_expiry_year": csv_values.expiry_year,
    "routing_number": csv_values.routing_number, "bank_account_number": csv_values.bank_account_number,
    "bank_account_type": csv_values.account_type,
}


def text_encoding(name: str | None) -> str:
    """The codec to open a csv file with: UTF-8 (any spelling) reads with or without a BOM, so the
    BOM never ends up in the first header."""
    if not name:
        return "utf-8-sig"
    try:
        if codecs.lookup(name).name == "utf-8":
            return "utf-8-sig"
    except LookupError:
        raise ConfigError(f"unknown encoding {name!r} (e.g. utf-8, latin-1, cp1252)") from None
    try:
        b" ".decode(name)
    except LookupError:  # a codec, but not from bytes to text
        raise ConfigError(f"{name!r} is not a text encoding (e.g. utf-8, latin-1, cp1252)") from None
    except UnicodeError:
        pass  # a text encoding that needs more than one byte (utf-16)
    return name


def header_key(name: str) -> str:
    """How headers are compared: trimmed, inner spaces collapsed, case-insensitive."""
    return " ".join(name.split()).casefold()


class CsvReader:
    def read(self, path: Path, options: CsvOptions) -> Iterator[RawRecord]:
        profile = options.mapping
        if profile is None:
            raise ConfigError(f"{path}: a csv file is read through a mapping profile: add --profile PROFILE "
                              "(`cutover csv profile init` writes one from the file's header)")
        encoding = text_encoding(options.encoding or profile.encoding)
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise SourceError(str(path), None, f"cannot open: {exc.strerror}") from None
        with handle:
            # lines as open(..., newline="") gives them: "\r\n", "\r" or "\n" ends one, and stays in a quoted cell
            rows = csv.reader(DecodedText(handle, encoding, universal_newlines=True).lines())
            line = 1
            try:
                header = next(rows, None)
                if header is None:
                    raise SourceError(str(path), None, "the file is empty: expected a header row")
                index = match_header(path, header, profile)
                line = rows.line_num + 1
                for row in rows:
                    if any(cell.strip() for cell in row):
                        yield _record(path, line, row, len(header), index, profile, options)
                    line = rows.line_num + 1
            except Undecodable as exc:
                shown = "utf-8" if encoding == "utf-8-sig" else encoding
                raise SourceError(str(path), exc.line, f"cannot be read as {shown}: column {exc.column}, "
                                                       f"{exc.describe()}; name the file's encoding with --encoding "
                                                       "(e.g. latin-1, cp1252)") from None
            except LineTooLong as exc:
                raise SourceError(str(path), exc.lines_before + 1, f"a line larger than {MAX_LINE >> 20} MB: refused "
                                                                   "rather than buffered without end") from None
            except csv.Error as exc:
                raise SourceError(str(path), line, f"not readable as CSV: {exc}") from None


def match_header(path: Path, header: list[str], profile: Profile) -> dict[str, int]:
    """Column index of every header the profile reads (trimmed, case-insensitive); blocking if one is missing."""
    positions: dict[str, int] = {}
    for column, name in enumerate(header):
        positions.setdefault(header_key(name), column)
    index: dict[str, int] = {}
    for wanted in profile.headers_needed():
        found = positions.get(header_key(wanted))
        if found is None:
            names = [h.strip() for h in header]
            near = hint_for(wanted.strip(), names)
            raise SourceError(str(path), 1, f"the profile maps column {wanted!r}, which is not in the header"
                                            + (f" ({near})" if near else f"; the header has {', '.join(names)}"))
        index[wanted] = found
    return index


def _record(path: Path, line: int, row: list[str], width: int, index: dict[str, int], profile: Profile,
            options: CsvOptions) -> RawRecord:
    entity = ENTITY_OF[profile.import_type]
    position = Position(str(path), line)
    shown = {field: row[index[header]].strip() for field, header in profile.columns.items()
             if index[header] < len(row) and row[index[header]].strip()}
    try:
        shown = {"account_number": _account_number(row, index, profile), **shown}
    except (RecordError, IndexError):
        pass  # the row's own error says what is wrong
    if len(row) != width:
        return RawRecord(entity, shown, position, InvalidValue(
            f"the row has {len(row)} cells, the header has {width}", field="(row)", value=str(len(row)),
            hint="a cell with a comma or a line break must be quoted"))
    try:
        fields = {"account_number": _account_number(row, index, profile)}
        fields.update(_fields(row, index, profile))
    except RecordError as error:
        return RawRecord(entity, shown, position, error)
    if profile.invoice_types:
        fields["invoice_types"] = json.dumps(list(profile.invoice_types), ensure_ascii=False)
    derived = {CREATE_MISSING: "true"} if options.create_missing and entity != "Registration" else {}
    return RawRecord(entity, fields, position, derived=derived)


def _account_number(row: list[str], index: dict[str, int], profile: Profile) -> str:
    pieces = [profile.prefix]
    for part in profile.parts:
        if part.column is None:
            pieces.append(part.literal or "")
            continue
        value = row[index[part.column]].strip()
        if not value:
            raise MissingField(f"the account number needs column {part.column!r}, which is empty on this row",
                               field=part.column, value="")
        pieces.append(value)
    return "".join(pieces)


def _fields(row: list[str], index: dict[str, int], profile: Profile) -> dict[str, str]:
    fields: dict[str, str] = {}
    for field, header in profile.columns.items():
        value = row[index[header]].strip()
        if value:
            check = _CHECKS.get(field)
            fields[field] = check(field, value) if check else value
    for field in REQUIRED[profile.import_type]:
        if not fields.get(field):
            raise MissingField(f"{field} is empty", field=field, value="")
    if fields.get("email"):
        check_email(fields["email"], "email")
    if profile.import_type == "autopay":
        _payment_method(fields)
    return fields


def _payment_method(fields: dict[str, str]) -> None:
    """The row's method decides which group of fields it needs; the other group must be empty, and
    the last four digits are kept in clear (the number itself is encrypted by the producer)."""
    card = fields["payment_method"] == "card"
    needed, other = (CARD_REQUIRED, ACH_GROUP) if card else (ACH_REQUIRED, CARD_GROUP)
    missing = [f for f in needed if not fields.get(f)]
    if missing:
        raise MissingField(f"{'a card' if card else 'an ACH'} payment method needs {', '.join(missing)}",
                           field=missing[0], value="")
    stray = [f for f in other if fields.get(f)]
    if stray:
        raise InvalidValue(f"{'a card' if card else 'an ACH'} row also fills {', '.join(stray)}", field=stray[0],
                           value="(not shown)", hint="one payment method per row")
    number = fields["card_number"] if card else fields["bank_account_number"]
    fields["last4"] = number[-4:]
