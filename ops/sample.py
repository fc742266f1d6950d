"""Synthetic engageip exports of any size, for load tests and benchmarks.

The hand-written example in ``examples/engageip`` holds a few hundred records; measuring throughput,
back-pressure and flat memory needs files of 10^5–10^7 records that look like a legacy billing export
(records grouped by type, realistic values, ``&`` and accents that must be escaped) and that are
byte-for-byte reproducible, so two benchmark runs compare like with like.

So the generator is deterministic (one ``random.Random(seed)`` drives every choice) and streams:
each record is written the moment it is made. The export groups records by type, so each type is
spooled to its own temporary file during the single pass over the accounts, and the spools are then
concatenated into ``accounts.xml``. Nothing grows with the number of accounts except the files.

Per account: one ``User`` (``CUST0000001``…), two ``Contact`` records (billing and technical), a
``ContactEmail`` and a ``ContactPhone`` for each contact; every tenth account is also the
``ChildAccount`` of a random earlier account (so there are never cycles). With ``fault_rate`` > 0,
``accounts × fault_rate`` Users (rounded half up), spread evenly through the file, carry a TaxCode the
reference data does not define — a first run dead-letters them and blocks their contacts.
"""

from __future__ import annotations

import math
import random
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import IO
from xml.sax.saxutils import quoteattr

__all__ = ["CHILD_EVERY", "UNKNOWN_TAX_CODES", "account_name", "write_engageip_sample"]

OWNER = "Harbourview Communications"
CHILD_EVERY = 10
"""Every CHILD_EVERY-th account is a child account: accounts // CHILD_EVERY ChildAccount records."""

TAX_RATES: dict[str, tuple[str, ...]] = {"Residential": ("0.05", "0.08"), "Commercial": ("0.05", "0.08", "0.0125"),
                                         "Exempt": ()}
UNKNOWN_TAX_CODES: tuple[str, ...] = ("Commercial Plus", "residential", "Residental")
"""What a faulty User carries instead: a missing code and two near misses (wrong case, misspelling)."""

ROLES = ("Customer", "Business Customer")
CULTURES = ("English", "French (Canada)")
CURRENCIES = ("USD", "CAD")
LANGUAGES = ("English", "French")
STATUS_TYPES = ("Active", "Active", "Active", "Active", "Suspended", "Closed")
BILL_GROUPS = ("Residential Monthly", "Business Monthly")
CREDIT_RATINGS = ("Default", "Good", "Fair", "Poor")
CONTACT_TYPES = ("Billing Contact", "Technical Contact")
CONTACT_POINT_TYPES = ("Email Address", "Fax", "Work Phone", "Home Phone", "Mobile Phone")

FIRST_NAMES = ("James", "Mary", "Robert", "Linda", "Michael", "Susan", "David", "Karen", "Joseph", "Nancy",
               "Thomas", "Lisa", "Richard", "Donna", "Daniel", "Carol", "Paul", "Sandra", "Mark", "Ruth",
               "Réjean", "Hélène", "Gilles", "Chantal", "Marc", "Josée", "Kevin", "Heather", "Brian", "Amy")
LAST_NAMES = ("Smith", "Johnson", "Pelletier", "Côté", "O'Brien", "Gagnon", "Thibodeau", "Leblanc", "Murphy",
              "MacDonald", "Theriault", "Ouellette", "Morin", "Cyr", "Libby", "Haskell", "Dyer", "Bouchard",
              "Nadeau", "Roy", "Carrier", "Michaud", "Hatch", "Tibbetts", "Dubé", "Lavoie", "Snow", "Grindle")
COMPANIES = ("Smith & Sons Plumbing", "Coastal Grocers", "Baker & Daughters Bakery", "Harbor Light Dental",
             "Pine Tree Auto Body", "Tidewater Accounting", "Morrison & Lee Architects", "Blue Heron Cafe",
             "Fundy Coast Motors", "Acadie Télécom Rurale", "Downeast Fisheries Co-op", "Lighthouse Books")
TITLES = ("Owner", "Office Manager", "Bookkeeper", "IT Manager", "Network Administrator", "Controller")
EMAIL_DOMAINS = ("harbourview.net", "gmail.com", "yahoo.com", "hotmail.com", "aol.com")
AREA_CODES = ("207", "603", "506", "802")
PASSWORD_WORDS = ("Welcome", "Harbour", "Lobster", "Puffin", "Granite", "Osprey", "Maple", "Beacon", "Kayak")
SECTIONS = ("User", "Contact", "ContactEmail", "ContactPhone", "ChildAccount")

XML_HEADER = '<?xml version="1.0" encoding="utf-8"?>\n<Import>\n'
XML_FOOTER = "</Import>\n"


def write_engageip_sample(out_dir: Path, accounts: int, *, seed: int = 0,
                          fault_rate: float = 0.0) -> list[Path]:
    """Write ``reference.xml`` and ``accounts.xml`` into ``out_dir``; return their paths in load order."""
    if accounts < 0:
        raise ValueError(f"accounts must be ≥ 0, got {accounts}")
    if not 0.0 <= fault_rate <= 1.0:
        raise ValueError(f"fault_rate must be between 0 and 1, got {fault_rate}")
    out_dir.mkdir(parents=True, exist_ok=True)
    reference = _write_reference(out_dir / "reference.xml")
    records = _write_accounts(out_dir / "accounts.xml", accounts, seed, _fault_count(accounts, fault_rate))
    return [reference, records]


# ---------------------------------------------------------------- reference data

def _reference_lines() -> Iterable[str]:
    yield _element("Owner", [("Name", OWNER)])
    for role in ROLES:
        yield _element("Role", [("Name", role), ("Owner", OWNER)])
    yield from _named("Culture", CULTURES)
    for code in CURRENCIES:
        yield _element("Currency", [("Code", code)])
    yield from _named("Language", LANGUAGES)
    yield from _named("StatusType", dict.fromkeys(STATUS_TYPES))
    for name, rates in TAX_RATES.items():
        yield _element("TaxCode", [("Name", name)] + [(f"Rate{i}", r) for i, r in enumerate(rates, 1)])
    yield from _named("BillGroup", BILL_GROUPS)
    yield from _named("CreditRating", CREDIT_RATINGS)
    yield from _named("ContactType", CONTACT_TYPES)
    yield from _named("ContactPointType", CONTACT_POINT_TYPES)


def _named(tag: str, names: Iterable[str]) -> Iterable[str]:
    return (_element(tag, [("Name", name)]) for name in names)


def _write_reference(path: Path) -> Path:
    with _open_xml(path) as out:
        out.write(XML_HEADER)
        out.writelines(_reference_lines())
        out.write(XML_FOOTER)
    return path


# ---------------------------------------------------------------- accounts

def _write_accounts(path: Path, accounts: int, seed: int, faults: int) -> Path:
    """One pass over the accounts, each record type spooled to its own file, then concatenated."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix=".sample-", dir=path.parent) as spool_dir:
        parts = [Path(spool_dir) / f"{name}.part" for name in SECTIONS]
        with ExitStack() as stack:
            spools = {name: stack.enter_context(_open_xml(part)) for name, part in zip(SECTIONS, parts, strict=True)}
            for index in range(accounts):
                _write_account(spools, rng, index, _is_faulty(index, faults, accounts))
        _concatenate(path, parts)
    return path


def _fault_count(accounts: int, fault_rate: float) -> int:
    """accounts × fault_rate rounded half up (Python's round() would send 2.5 to 2)."""
    return math.floor(accounts * fault_rate + 0.5)


def _is_faulty(index: int, faults: int, accounts: int) -> bool:
    """Exactly ``faults`` of ``accounts`` indexes answer True, evenly spaced (integer arithmetic only)."""
    return (index + 1) * faults // accounts > index * faults // accounts


def _write_account(spools: dict[str, IO[str]], rng: random.Random, index: int, faulty: bool) -> None:
    name = account_name(index)
    company = rng.choice(COMPANIES) if rng.random() < 0.3 else None
    spools["User"].write(_user(rng, name, business=company is not None, faulty=faulty))
    first_names = rng.sample(FIRST_NAMES, 2)  # distinct, so the two ContactNames never collide
    last_name = rng.choice(LAST_NAMES)
    for first, contact_type in zip(first_names, CONTACT_TYPES, strict=True):
        last = last_name if company is None or rng.random() < 0.5 else rng.choice(LAST_NAMES)
        _write_contact(spools, rng, name, (first, last), contact_type, company)
    if index % CHILD_EVERY == CHILD_EVERY - 1:
        parent = account_name(rng.randrange(index))  # always an earlier account: no cycles
        spools["ChildAccount"].write(_element("ChildAccount", [("Name", name), ("Parent", parent)]))


def account_name(index: int) -> str:
    """The account Name of the index-th account (0-based); a pure function so parents need no lookup."""
    return f"CUST{index + 1:07d}"


def _user(rng: random.Random, name: str, *, business: bool, faulty: bool) -> str:
    french = rng.random() < 0.15
    status = rng.choice(STATUS_TYPES)
    tax_code = rng.choice(UNKNOWN_TAX_CODES) if faulty else ("Commercial" if business else "Residential")
    attrs = [
        ("Name", name), ("Password", _password(rng)), ("Owner", OWNER), ("Role", ROLES[int(business)]),
        ("Culture", CULTURES[int(french)]), ("Currency", CURRENCIES[int(french)]),
        ("Language", LANGUAGES[int(french)]),
        ("CreatedDate", _date(rng)), ("StatusType", status), ("TaxCode", tax_code),
        ("BillGroup", BILL_GROUPS[int(business)]), ("CreditRating", rng.choice(CREDIT_RATINGS)),
        ("BillDay", str(rng.randint(1, 28))),
    ]
    if status != "Active":
        attrs.append(("DisableReason", "Non-Payment" if status == "Suspended" else "Cancelled"))
    return _element("User", attrs)


def _write_contact(spools: dict[str, IO[str]], rng: random.Random, user: str, person: tuple[str, str],
                   contact_type: str, company: str | None) -> None:
    first, last = person
    contact_name = f"{first} {last}"
    attrs = [("User", user), ("ContactName", contact_name), ("ContactFirstName", first),
             ("ContactLastName", last), ("ContactTitle", rng.choice(TITLES) if company else "Account Holder"),
             ("ContactType", contact_type)]
    if company:
        attrs.append(("ContactCompany", company))
    key = [("User", user), ("ContactName", contact_name)]
    spools["Contact"].write(_element("Contact", attrs))
    email = f"{_slug(first)}.{_slug(last)}{rng.randint(1, 999)}@{_email_domain(rng, company)}"
    spools["ContactEmail"].write(_element("ContactEmail", key + [("Email", email), ("ContactType", contact_type)]))
    phone_type = "Work Phone" if company else rng.choice(("Home Phone", "Mobile Phone"))
    phone = f"({rng.choice(AREA_CODES)}) 555-{rng.randrange(10000):04d}"
    spools["ContactPhone"].write(_element(
        "ContactPhone", key + [("Phone", phone), ("ContactType", contact_type), ("ContactPointType", phone_type)]))


def _email_domain(rng: random.Random, company: str | None) -> str:
    return f"{_slug(company)}.com" if company else rng.choice(EMAIL_DOMAINS)


def _password(rng: random.Random) -> str:
    return f"{rng.choice(PASSWORD_WORDS)}{rng.randint(1000, 9999)}{rng.choice('!#$%*')}"


def _date(rng: random.Random) -> str:
    """Month-first, as the default run expects; day ≤ 28 so every date is real."""
    day = f"{rng.randint(1, 12)}/{rng.randint(1, 28)}/{rng.randint(2000, 2007)}"
    if rng.random() < 0.5:
        return day
    return f"{day} {rng.randint(1, 12)}:{rng.randrange(60):02d}:{rng.randrange(60):02d} {rng.choice(('AM', 'PM'))}"


_SLUGS: dict[str, str] = {}


def _slug(text: str) -> str:
    """ASCII letters and digits only ('Côté' → 'cote', 'Smith & Sons' → 'smithsons'); memoised, the inputs are few."""
    slug = _SLUGS.get(text)
    if slug is None:
        ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
        slug = _SLUGS[text] = re.sub(r"[^a-z0-9]", "", ascii_text.lower())
    return slug


# ---------------------------------------------------------------- writing

def _element(tag: str, attrs: Sequence[tuple[str, str]]) -> str:
    body = " ".join(f"{name}={quoteattr(value)}" for name, value in attrs)
    return f"  <{tag} {body}/>\n"


def _open_xml(path: Path) -> IO[str]:
    return open(path, "w", encoding="utf-8", newline="\n")


def _concatenate(path: Path, parts: Sequence[Path]) -> None:
    with _open_xml(path) as out:
        out.write(XML_HEADER)
        for part in parts:
            with open(part, encoding="utf-8", newline="") as src:
                shutil.copyfileobj(src, out)
        out.write(XML_FOOTER)
