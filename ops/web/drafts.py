"""An import being clicked through (the seed's Customer Import Tool): the order of its screens,
what each screen needs before the next can open, and the mapping profile it amounts to — the same
YAML/JSON profile `cutover run --profile` reads (``producer.readers.csv_profile``), so a mapping
saved here runs from the command line and a profile written there opens here."""

from __future__ import annotations

import csv
import itertools
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from ops.profiles import init_profile, read_header
from producer.readers.csv_import import header_key, text_encoding
from producer.readers.csv_profile import (
    ENROLS,
    FIELDS,
    PLACEHOLDER,
    REQUIRED,
    Profile,
    ProfileError,
    load_profile,
    parse_profile,
)
from shared.entities import REGISTRY
from shared.errors import ConfigError
from shared.schema.console import ConsoleImport

STEPS: tuple[tuple[str, str], ...] = (
    ("biller", "Biller"), ("type", "Import type"), ("file", "File"), ("invoice-types", "Invoice types"),
    ("mapping", "Columns"), ("account-number", "Account number"), ("order", "Order"), ("precheck", "Pre-check"),
    ("review", "Review and start"),
)
TYPE_LABELS = {"registration": "Customer Registration", "autopay": "Autopay", "paperless": "Paperless"}
SECRET_FIELDS = frozenset(REGISTRY["Autopay"].secret_fields)
"""Fields whose column must never be shown or built into an account number: card and bank account numbers."""
PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
PROFILE_FILE = "profile.yaml"
MAX_PARTS = 6


def steps_for(import_type: str | None) -> list[tuple[str, str]]:
    """The screens of an import: invoice types only for autopay and paperless, as in the seed."""
    return [s for s in STEPS if s[0] != "invoice-types" or import_type in ENROLS]


def first_missing(draft: ConsoleImport) -> str:
    """The first screen whose answer is still missing: no later screen opens before it."""
    if not draft.biller:
        return "biller"
    if not draft.import_type:
        return "type"
    if not draft.file_path or not Path(draft.file_path).exists():
        return "file"
    if draft.import_type in ENROLS and not draft.invoice_types:
        return "invoice-types"
    if not draft.columns or any(f not in draft.columns for f in REQUIRED[draft.import_type]):
        return "mapping"
    if not draft.parts:
        return "account-number"
    if draft.precheck is None:
        return "order"
    if draft.precheck.get("blocking"):
        return "precheck"
    return "review"


def reachable(draft: ConsoleImport, step: str) -> bool:
    order = [s for s, _ in steps_for(draft.import_type)]
    return order.index(step) <= order.index(first_missing(draft))


def forget_from(draft: ConsoleImport, step: str) -> None:
    """A screen's answer changed: what later screens built on it must be answered again. A new import
    type or a new file clears the mapping and the account number (they name the file's headers);
    any change clears the pre-check."""
    if step == "type":
        draft.invoice_types = []
    if step in ("type", "file"):
        draft.columns, draft.parts, draft.prefix = {}, [], ""
    draft.precheck = None


def guess(path: Path, import_type: str, encoding: str | None) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The mapping `cutover csv profile init` would write for this file: its columns and its
    account-number part (a placeholder is left out for the operator to choose)."""
    text, _ = init_profile(path, import_type, encoding)
    doc = yaml.safe_load(text)
    parts = [p for p in doc["account_number"]["parts"] if not str(p.get("column", "")).startswith(PLACEHOLDER)]
    return dict(doc["columns"]), parts


def headers_of(path: Path, encoding: str | None) -> list[str]:
    return read_header(path, encoding)


def check_columns(import_type: str, columns: dict[str, str]) -> None:
    """The column mapping alone, with `--profile`'s rules (required fields, autopay's card or ACH
    group), and the console's own: a column of card or bank account numbers feeds no other field,
    whose messages would show it. ConfigError says what is wrong."""
    for secret in SECRET_FIELDS & set(columns):
        for name, header in columns.items():
            if name not in SECRET_FIELDS and header_key(header) == header_key(columns[secret]):
                raise ConfigError(f"column {header!r} is mapped to {secret}: it cannot also be {name}, "
                                  "whose values are shown")
    probe = {"import_type": import_type, "columns": columns, "account_number": {"parts": [{"column": "probe"}]}}
    if import_type in ENROLS:
        probe["invoice_types"] = ["probe"]
    try:
        parse_profile(probe, "columns")
    except ProfileError as exc:
        raise ConfigError(str(exc).removeprefix("profile columns: ")) from None


def check_parts(draft: ConsoleImport) -> None:
    """The account number needs a column, and never a column of card or bank account numbers."""
    if not any("column" in p for p in draft.parts):
        raise ConfigError("the account number needs at least one column: with text alone every row would get the same number")
    secret = {header_key(draft.columns[f]) for f in SECRET_FIELDS if f in draft.columns}
    for part in draft.parts:
        if "column" in part and header_key(part["column"]) in secret:
            raise ConfigError(f"column {part['column']!r} holds card or bank account numbers: it cannot be part of the "
                              "account number")


def profile_document(draft: ConsoleImport) -> dict[str, Any]:
    doc: dict[str, Any] = {"import_type": draft.import_type, "columns": dict(draft.columns),
                           "account_number": {"prefix": draft.prefix or "", "parts": list(draft.parts)}}
    if draft.import_type in ENROLS:
        doc["invoice_types"] = list(draft.invoice_types)
    if draft.encoding:
        doc["encoding"] = draft.encoding
    return doc


def build_profile(draft: ConsoleImport) -> Profile:
    """The profile the import amounts to, with every check `--profile` makes (ConfigError names what
    is wrong), and the console's own on the account number."""
    check_parts(draft)
    try:
        return parse_profile(profile_document(draft), "this import's mapping")
    except ProfileError as exc:
        raise ConfigError(str(exc).removeprefix("profile this import's mapping: ")) from None


def write_profile(profile: Profile, path: Path, comment: str, mode: int = 0o600) -> Path:
    """Write the profile as YAML (the format `--profile` reads), replacing the file atomically."""
    text = f"# {comment}\n" + yaml.safe_dump(profile.to_document(), sort_keys=False, allow_unicode=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.unlink(missing_ok=True)
    with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "w", encoding="utf-8") as handle:
        handle.write(text)
    partial.replace(path)
    return path


@dataclass(frozen=True)
class NamedProfile:
    name: str
    path: Path
    profile: Profile | None
    problem: str | None


def named_profiles(folder: Path) -> list[NamedProfile]:
    """The profiles in the shared folder (YAML or JSON), each loaded with `--profile`'s checks."""
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in (".yaml", ".yml", ".json") or not path.is_file():
            continue
        try:
            found.append(NamedProfile(path.stem, path, load_profile(path), None))
        except ConfigError as exc:
            found.append(NamedProfile(path.stem, path, None, str(exc).removeprefix(f"profile {path}: ")))
    return found


def save_named(folder: Path, name: str, profile: Profile, operator: str, now: datetime, replace: bool) -> Path:
    if not PROFILE_NAME.match(name):
        raise ConfigError(f"profile name {name!r}: use letters, digits, '.', '_' and '-' (up to 64)")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    others = [p for p in folder.glob(f"{name}.*") if p.suffix.lower() in (".yaml", ".yml", ".json")]
    if others and not replace:
        raise ConfigError(f"a profile named {name!r} exists ({others[0].name}): tick 'replace it' or choose another name")
    return write_profile(profile, path, f"csv mapping profile {name!r}, saved in the web console by {operator} at "
                                        f"{now:%Y-%m-%d %H:%M} UTC; usable as `cutover run FILE --profile {path}`",
                         mode=0o644)


def apply_profile(draft: ConsoleImport, profile: Profile) -> list[str]:
    """Take a saved profile's answers; returns what did not fit this file (headers it lacks)."""
    have = {header_key(h): h for h in draft.headers}
    lacking = [h for h in profile.headers_needed() if header_key(h) not in have]
    draft.columns = {f: have[header_key(h)] for f, h in profile.columns.items() if header_key(h) in have}
    draft.prefix = profile.prefix
    draft.parts = [{"column": have.get(header_key(p.column), p.column)} if p.column else {"literal": p.literal or ""}
                   for p in profile.parts]
    if profile.import_type in ENROLS:
        draft.invoice_types = list(profile.invoice_types)
    if profile.encoding and not draft.encoding:
        draft.encoding = profile.encoding
    return lacking


def field_rows(draft: ConsoleImport) -> list[dict[str, Any]]:
    """One row per field of the import type, for the column-mapping screen."""
    assert draft.import_type is not None
    return [{"name": f, "required": f in REQUIRED[draft.import_type], "secret": f in SECRET_FIELDS,
             "header": draft.columns.get(f, "")} for f in FIELDS[draft.import_type]]


def preview_numbers(draft: ConsoleImport, limit: int = 3) -> list[str]:
    """The account numbers the recipe makes from the file's first rows (never from a secret column)."""
    if not draft.file_path or not draft.parts:
        return []
    try:
        check_parts(draft)
    except ConfigError:
        return []
    index = {header_key(h): i for i, h in enumerate(draft.headers)}
    try:
        with open(draft.file_path, encoding=text_encoding(draft.encoding), newline="") as handle:
            rows = list(itertools.islice(csv.reader(handle), 1, limit + 1))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    out = []
    for row in rows:
        pieces = [draft.prefix or ""]
        for part in draft.parts:
            if "column" in part:
                at = index.get(header_key(part["column"]))
                pieces.append(row[at].strip() if at is not None and at < len(row) else "?")
            else:
                pieces.append(part.get("literal", ""))
        out.append("".join(pieces))
    return out
