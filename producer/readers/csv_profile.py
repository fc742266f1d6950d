"""Mapping profiles of the csv format (the seed's Customer Import Tool): which import it is, which
header holds each field, how the account number is built, which invoice types to enrol.

A profile is a small YAML or JSON file, saved and reused across files. Loading one checks it
completely — unknown keys, a required field with no mapping, a recipe part that is neither a column
nor a literal — so a bad profile blocks the import before any file is read."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shared.errors import ConfigError
from shared.hints import hint_for

IMPORT_TYPES = ("registration", "autopay", "paperless")
CARD_FIELDS = ("card_type", "card_number", "card_expiry_month", "card_expiry_year", "name_on_card")
ACH_FIELDS = ("bank_name", "routing_number", "bank_account_number", "bank_account_type", "name_on_account")
FIELDS: dict[str, tuple[str, ...]] = {
    "registration": ("name", "login", "email", "phone", "address"),
    "autopay": ("payment_method", *CARD_FIELDS, *ACH_FIELDS),
    "paperless": ("name", "email"),
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "registration": ("name", "login"),
    "autopay": ("payment_method",),
    "paperless": ("email",),
}
ENROLS = ("autopay", "paperless")
"""Import types that enrol the owner login on invoice types."""
_PROFILE_KEYS = ("import_type", "columns", "account_number", "invoice_types", "encoding", "date_format")


class ProfileError(ConfigError):
    """A profile that cannot work: the import is blocked before anything is read."""

    def __init__(self, path: Path | str, message: str) -> None:
        super().__init__(f"profile {path}: {message}")


@dataclass(frozen=True)
class Part:
    """One piece of the account number: a column's (trimmed) value, or literal text."""

    column: str | None = None
    literal: str | None = None


@dataclass(frozen=True)
class Profile:
    path: str
    import_type: str
    columns: dict[str, str]
    """field → header as written in the profile (matched trimmed, case-insensitively)."""
    prefix: str = ""
    parts: tuple[Part, ...] = ()
    invoice_types: tuple[str, ...] = ()
    encoding: str | None = None
    date_format: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def headers_needed(self) -> list[str]:
        """Every header the profile reads: mapped fields and the account-number columns."""
        needed = list(self.columns.values()) + [p.column for p in self.parts if p.column]
        return list(dict.fromkeys(needed))

    def to_document(self) -> dict[str, Any]:
        """The profile as it is saved (YAML or JSON)."""
        parts = [{"column": p.column} if p.column else {"literal": p.literal} for p in self.parts]
        doc: dict[str, Any] = {"import_type": self.import_type, "columns": dict(self.columns),
                               "account_number": {"prefix": self.prefix, "parts": parts}}
        if self.import_type in ENROLS:
            doc["invoice_types"] = list(self.invoice_types)
        if self.encoding:
            doc["encoding"] = self.encoding
        if self.date_format:
            doc["date_format"] = self.date_format
        return doc


def load_profile(path: Path) -> Profile:
    """Read and check a profile; ProfileError names the file and the key at fault."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(path, f"cannot read it: {exc.strerror}") from None
    try:
        doc = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ProfileError(path, f"not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {exc}") from None
    if not isinstance(doc, dict):
        raise ProfileError(path, "expected a mapping with import_type, columns, account_number")
    return parse_profile(doc, str(path))


PLACEHOLDER = "FILL IN"
"""What `cutover csv profile init` writes where only the operator knows the answer."""


def parse_profile(doc: dict[str, Any], where: str) -> Profile:
    _refuse_placeholders(doc, where, "")
    unknown = [k for k in doc if k not in _PROFILE_KEYS]
    if unknown:
        raise ProfileError(where, f"unknown key {unknown[0]!r}" + _hint(unknown[0], _PROFILE_KEYS))
    import_type = doc.get("import_type")
    if import_type not in IMPORT_TYPES:
        raise ProfileError(where, f"import_type {import_type!r} is not one of {', '.join(IMPORT_TYPES)}"
                           + (_hint(import_type, IMPORT_TYPES) if isinstance(import_type, str) else ""))
    columns = _columns(doc.get("columns"), import_type, where)
    prefix, parts = _recipe(doc.get("account_number"), where)
    invoice_types = _invoice_types(doc.get("invoice_types"), import_type, where)
    encoding = doc.get("encoding")
    if encoding is not None:
        _check_encoding(str(encoding), where)
    date_format = doc.get("date_format")
    return Profile(where, import_type, columns, prefix, parts, invoice_types,
                   str(encoding) if encoding else None, str(date_format) if date_format else None)


def _refuse_placeholders(value: Any, where: str, path: str) -> None:
    if isinstance(value, str) and value.startswith(PLACEHOLDER):
        raise ProfileError(where, f"{path or 'a value'} still says {value!r}: fill it in")
    if isinstance(value, dict):
        for key, item in value.items():
            _refuse_placeholders(item, where, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_placeholders(item, where, f"{path}[{index}]")


def _hint(value: str, candidates: tuple[str, ...]) -> str:
    near = hint_for(value, candidates)
    return f" — {near}" if near else ""


def _columns(raw: Any, import_type: str, where: str) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise ProfileError(where, "columns must map each field to a header, e.g. `email: \"E-mail Address\"`")
    allowed = FIELDS[import_type]
    out: dict[str, str] = {}
    for name, header in raw.items():
        if name not in allowed:
            raise ProfileError(where, f"columns: {import_type} has no field {name!r}"
                               + (_hint(str(name), allowed) or f" (fields: {', '.join(allowed)})"))
        if not isinstance(header, str) or not header.strip():
            raise ProfileError(where, f"columns: {name} must name a header (text), not {header!r}")
        out[str(name)] = header
    missing = [f for f in REQUIRED[import_type] if f not in out]
    if missing:
        raise ProfileError(where, f"a {import_type} import needs {', '.join(missing)} mapped to a column (columns: …)")
    if import_type == "autopay":
        card = all(f in out for f in CARD_FIELDS if f != "card_type")
        ach = all(f in out for f in ACH_FIELDS if f != "bank_name")
        if not card and not ach:
            raise ProfileError(where, "an autopay import needs the card fields (card_number, card_expiry_month, "
                                      "card_expiry_year, name_on_card) or the ACH fields (routing_number, "
                                      "bank_account_number, bank_account_type, name_on_account) mapped")
    return out


def _recipe(raw: Any, where: str) -> tuple[str, tuple[Part, ...]]:
    if not isinstance(raw, dict) or not isinstance(raw.get("parts"), list) or not raw["parts"]:
        raise ProfileError(where, "account_number needs parts: a list of {column: HEADER} and {literal: TEXT}")
    unknown = [k for k in raw if k not in ("prefix", "parts")]
    if unknown:
        raise ProfileError(where, f"account_number: unknown key {unknown[0]!r} (prefix, parts)")
    parts: list[Part] = []
    for index, item in enumerate(raw["parts"]):
        if not isinstance(item, dict) or len(item) != 1 or not ({"column", "literal"} & set(item)):
            raise ProfileError(where, f"account_number.parts[{index}] must be {{column: HEADER}} or {{literal: TEXT}}, "
                                      f"not {item!r}")
        if "column" in item:
            column = item["column"]
            if not isinstance(column, str) or not column.strip():
                raise ProfileError(where, f"account_number.parts[{index}].column must name a header, not {column!r}")
            parts.append(Part(column=column))
        else:
            literal = item["literal"]
            if not isinstance(literal, (str, int)) or isinstance(literal, bool) or str(literal) == "":
                raise ProfileError(where, f"account_number.parts[{index}].literal must be text, not {literal!r}")
            parts.append(Part(literal=str(literal)))
    if not any(p.column for p in parts):
        raise ProfileError(where, "account_number.parts names no column: every row would get the same number")
    return str(raw.get("prefix") or ""), tuple(parts)


def _invoice_types(raw: Any, import_type: str, where: str) -> tuple[str, ...]:
    if import_type not in ENROLS:
        if raw:
            raise ProfileError(where, f"invoice_types are for autopay and paperless imports, not {import_type}")
        return ()
    if not isinstance(raw, list) or not raw or not all(isinstance(t, str) and t.strip() for t in raw):
        raise ProfileError(where, f"a {import_type} import needs invoice_types: a list of invoice type names "
                                  "(every row is enrolled on each one)")
    return tuple(dict.fromkeys(t.strip() for t in raw))


def _check_encoding(name: str, where: str) -> None:
    import codecs

    try:
        codecs.lookup(name)
    except LookupError:
        raise ProfileError(where, f"encoding {name!r} is unknown (e.g. utf-8, latin-1, cp1252)") from None
