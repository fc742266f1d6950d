"""`cutover csv profile init` and `check`: write a starting profile from a file's header (guessing
the obvious mappings, as the seed's tool pre-selects columns) and check a profile, alone or against
a file's header."""

from __future__ import annotations

import csv
import re
from difflib import SequenceMatcher
from pathlib import Path

import yaml

from producer.readers.csv_import import match_header, text_encoding
from producer.readers.csv_profile import ENROLS, FIELDS, PLACEHOLDER, REQUIRED, Profile, load_profile
from shared.errors import ConfigError, SourceError

SYNONYMS: dict[str, tuple[str, ...]] = {
    "name": ("name", "customer name", "full name", "account name"),
    "login": ("login", "username", "user name", "login name", "user id"),
    "email": ("email", "e mail", "email address", "e mail address", "mail"),
    "phone": ("phone", "telephone", "phone number", "mobile"),
    "address": ("address", "street address", "service address", "mailing address"),
    "payment_method": ("payment method", "pay method", "method", "payment type"),
    "card_type": ("card type", "card brand"),
    "card_number": ("card number", "cc number", "credit card number", "card no"),
    "card_expiry_month": ("exp month", "expiry month", "expiration month", "card exp month"),
    "card_expiry_year": ("exp year", "expiry year", "expiration year", "card exp year"),
    "name_on_card": ("name on card", "cardholder name", "card holder"),
    "bank_name": ("bank name", "bank"),
    "routing_number": ("routing number", "aba", "routing", "aba number"),
    "bank_account_number": ("bank account", "bank account number", "account number bank", "dda"),
    "bank_account_type": ("account type", "bank account type", "checking savings"),
    "name_on_account": ("name on account", "account holder", "account holder name"),
}
ACCOUNT_NUMBER = ("account number", "account no", "account", "acct", "acct number", "customer number")
GOOD_ENOUGH = 0.88
"""How close a header must be to a known name (0.86 would take 'Customer Name' for 'customer number')."""


def _normal(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def _best(candidates: tuple[str, ...], headers: list[str], taken: set[str]) -> str | None:
    best, score = None, 0.0
    for header in headers:
        if header in taken:
            continue
        for wanted in candidates:
            ratio = SequenceMatcher(None, _normal(header), wanted).ratio()
            if ratio > score:
                best, score = header, ratio
    return best if score >= GOOD_ENOUGH else None


def read_header(path: Path, encoding: str | None) -> list[str]:
    try:
        with path.open(encoding=text_encoding(encoding), newline="") as handle:
            header = next(csv.reader(handle), None)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read its header: {exc}; name the encoding with --encoding") from None
    if not header:
        raise ConfigError(f"{path}: the file is empty: no header row")
    return [" ".join(h.split()) for h in header]


def init_profile(path: Path, import_type: str, encoding: str | None) -> tuple[str, list[str]]:
    """The profile's YAML text and the fields left for the operator to map."""
    headers = read_header(path, encoding)
    account = _best(ACCOUNT_NUMBER, headers, set())
    taken = {account} if account else set()
    columns: dict[str, str] = {}
    for name in FIELDS[import_type]:
        found = _best(SYNONYMS.get(name, (name.replace("_", " "),)), headers, taken)
        if found:
            columns[name] = found
            taken.add(found)
    recipe = {"prefix": "", "parts": [{"column": account or f"{PLACEHOLDER}: account number header"}]}
    doc: dict[str, object] = {"import_type": import_type, "columns": columns, "account_number": recipe}
    if import_type in ENROLS:
        doc["invoice_types"] = [f"{PLACEHOLDER}: an invoice type name"]
    if encoding:
        doc["encoding"] = encoding
    unmapped = [f for f in FIELDS[import_type] if f not in columns]
    header = (f"# cutover csv profile, written from the header of {path.name}\n"
              f"# headers: {', '.join(headers)}\n"
              + (f"# not mapped (add them under columns if the file has them): {', '.join(unmapped)}\n" if unmapped else ""))
    todo = [f for f in REQUIRED[import_type] if f not in columns] + ([] if account else ["account_number"])
    return header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), todo


def check_profile(profile_path: Path, file: Path | None, encoding: str | None) -> Profile:
    """Load the profile (ProfileError if it cannot work) and, given a file, match its header."""
    profile = load_profile(profile_path)
    if file is not None:
        header = read_header(file, encoding or profile.encoding)
        try:
            match_header(file, header, profile)
        except SourceError as exc:
            raise ConfigError(str(exc)) from None
    return profile
