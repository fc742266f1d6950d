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

Options for benchmarks only ever *remove* something from that picture or *add* a file; they never
shift the random stream, so ``accounts.xml`` without passwords, or with three contact points, is the
default file minus those attributes or records, and turning the ledger on leaves ``accounts.xml``
byte-for-byte as it was (the ledger draws from its own stream, seeded from the same seed):

- ``passwords=False``: no ``Password`` on Users (hashing is Argon2id at ~130 ms by design: a throughput
  benchmark must be able to leave it out).
- ``points_per_account``: the first N of (email of contact 1, email of contact 2, phone of contact 1,
  phone of contact 2); 3 gives the benchmark's proportion 1 account : 2 contacts : 3 contact points.
- ``ledger=True``: also ``ledger.xml``, a quarter (January–March 2008, after every CreatedDate) per
  account: an ``OpeningBalance`` (invoice 1, closed and printed by the format itself), nine ``Debit``
  and two ``Credit`` lines on three monthly invoices (2–4), and four ``Payment`` records, one per invoice,
  about a third of them naming the invoice they pay, the others left to auto-disburse.

The ledger is written in blocks of ``accounts_per_close`` accounts (default 100). Inside a block, each
month is one section in account order, ended by a bare ``<CloseInvoice CloseInvoice=""/>``, which closes
the open invoice of every account the section touched (docs/formats.md, "Which invoice a line goes on":
a bare close closes the open invoice of every account that got a line since the previous close). So closes are
few (three per block), an account's records sit within its block and a contiguous range of records
touches few accounts, and no close is a giant: a bare close is one record whose worker finds, locks and
closes every invoice it covers in one transaction, and the producer keeps every covered invoice open in
memory until it reads the close — both grow with the block, not with the file.
"""

from __future__ import annotations

import calendar
import functools
import math
import random
import re
import shutil
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import IO
from xml.sax.saxutils import quoteattr

__all__ = ["ACCOUNTS_PER_CLOSE", "AREA_CODES", "BILL_GROUPS", "CHILD_EVERY", "COMPANIES", "CONTACT_TYPES", "CREDIT_RATINGS",
           "CULTURES", "CURRENCIES", "EMAIL_DOMAINS", "FIRST_NAMES", "LANGUAGES", "LAST_NAMES", "LEDGER_MIX", "OWNER",
           "PASSWORD_WORDS", "POINTS_PER_ACCOUNT", "ROLES", "TITLES", "UNKNOWN_TAX_CODES", "XML_FOOTER", "XML_HEADER",
           "account_name", "expected_counts", "reference_lines", "slug", "write_engageip_sample"]
"""The public names, the ones ``ops.bench.bigfile`` builds its faster file from."""

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

POINTS_PER_ACCOUNT = 4
"""Default contact points per account: an email and a phone for each of the two contacts."""
MAX_POINTS = 4

XML_HEADER = '<?xml version="1.0" encoding="utf-8"?>\n<Import>\n'
XML_FOOTER = "</Import>\n"
LEDGER_HEADER = '<?xml version="1.0" encoding="utf-8"?>\n<Ledger>\n'
LEDGER_FOOTER = "</Ledger>\n"

Attrs = list[tuple[str, str]]


# ---------------------------------------------------------------- ledger vocabulary

@dataclass(frozen=True)
class Offer:
    """A monthly charge: the Service it is billed on (a Debit's ``Package``), its price, its wording."""

    service: str
    cents: int
    english: str
    french: str


RESIDENTIAL_ACCESS = (Offer("Dial-Up Access", 1795, "Dial-up unlimited", "Accès commuté illimité"),
                      Offer("DSL Access 3M", 2495, "DSL 3 Mbps", "DSL 3 Mbit/s"),
                      Offer("DSL Access 6M", 2995, "DSL 6 Mbps", "DSL 6 Mbit/s"))
BUSINESS_ACCESS = (Offer("DSL Access 6M", 5995, "Business DSL 6 Mbps", "DSL affaires 6 Mbit/s"),
                   Offer("Fibre Access 20M", 18900, "Business fibre 20 Mbps", "Fibre affaires 20 Mbit/s"))
RESIDENTIAL_EXTRAS = (Offer("Modem Rental", 500, "DSL modem rental", "Location de modem DSL"),
                      Offer("Email Mailbox", 200, "Extra mailbox", "Boîte aux lettres supplémentaire"),
                      Offer("Static IP", 1000, "Static IP address", "Adresse IP fixe"),
                      Offer("VoIP Line", 1995, "Home phone line", "Ligne téléphonique résidentielle"),
                      Offer("Voicemail", 495, "Voicemail", "Messagerie vocale"))
BUSINESS_EXTRAS = (Offer("Static IP", 1500, "Static IP address", "Adresse IP fixe"),
                   Offer("Email Mailbox", 1000, "Mailboxes (5)", "Boîtes aux lettres (5)"),
                   Offer("Web Hosting", 2495, "Web hosting & e-mail", "Hébergement Web & courriel"),
                   Offer("VoIP Line", 2495, "Business phone line", "Ligne téléphonique d'affaires"),
                   Offer("Domain Registration", 250, "Domain registration", "Enregistrement de domaine"))
ACCESS = (RESIDENTIAL_ACCESS, BUSINESS_ACCESS)
EXTRAS = (RESIDENTIAL_EXTRAS, BUSINESS_EXTRAS)
OPENING_BALANCE_SERVICE = "Opening Balance"
"""The Service the loader tags an OpeningBalance with: the reference data must define it."""
SERVICES = tuple(dict.fromkeys(o.service for offers in (*ACCESS, *EXTRAS) for o in offers)) + (OPENING_BALANCE_SERVICE,)
PAYMENT_TYPES = ("Check", "Credit Card", "ACH", "Cash", "Money Order")
PAYMENT_CHOICES = ("Check", "Check", "Check", "Credit Card", "Credit Card", "ACH", "ACH", "Cash", "Money Order")
"""Weighted: how a small ISP's customers paid in 2008."""

LEDGER_YEAR = 2008
"""The quarter billed: after every generated CreatedDate (2000–2007), so no charge predates its account."""
MONTHS = (("January", "February", "March", "April"), ("janvier", "février", "mars", "avril"))
PERIODS = 3
"""Monthly invoices per account (January–March), each closed by its block's bare CloseInvoice."""
EXTRAS_PER_ACCOUNT = 2
CREDITS_PER_ACCOUNT = 2
PAYMENTS_PER_ACCOUNT = PERIODS + 1
"""One per invoice: the opening balance in January, each month's invoice the month after."""
LEDGER_MIX: dict[str, int] = {"OpeningBalance": 1, "Debit": PERIODS * (1 + EXTRAS_PER_ACCOUNT),
                              "Credit": CREDITS_PER_ACCOUNT, "Payment": PAYMENTS_PER_ACCOUNT}
"""Ledger records per account (CloseInvoice aside: PERIODS per block of accounts): 12 transactions, 4 payments."""
ACCOUNTS_PER_CLOSE = 100
"""Accounts per ledger block, each month of a block closed by one bare CloseInvoice."""
NAMED_PAYMENT_SHARE = 0.3
"""Payments that name the invoice they pay (disbursed now); the rest auto-disburse later."""
OPENING_CREDIT_SHARE = 0.15
"""Accounts that come over in credit (a negative opening balance)."""
BULK_MAILBOX_CENTS = 100


@dataclass(frozen=True)
class _Account:
    """What the ledger needs to know about an account the accounts pass has just written."""

    name: str
    business: bool
    french: bool


@dataclass(frozen=True)
class _Shape:
    """The options that change what each account writes, not how many accounts there are."""

    passwords: bool = True
    points: int = POINTS_PER_ACCOUNT


def write_engageip_sample(out_dir: Path, accounts: int, *, seed: int = 0, fault_rate: float = 0.0,
                          passwords: bool = True, points_per_account: int = POINTS_PER_ACCOUNT, ledger: bool = False,
                          accounts_per_close: int = ACCOUNTS_PER_CLOSE) -> list[Path]:
    """Write ``reference.xml`` and ``accounts.xml`` (and ``ledger.xml`` with ``ledger``) into ``out_dir``;
    return their paths in load order. :func:`expected_counts` says what they hold."""
    _check_arguments(accounts, fault_rate=fault_rate, points_per_account=points_per_account,
                     accounts_per_close=accounts_per_close)
    out_dir.mkdir(parents=True, exist_ok=True)
    reference = _write_reference(out_dir / "reference.xml", ledger)
    shape = _Shape(passwords, points_per_account)
    ledger_path = out_dir / "ledger.xml" if ledger else None
    records = _write_accounts(out_dir / "accounts.xml", accounts, seed, _fault_count(accounts, fault_rate), shape,
                              (ledger_path, accounts_per_close))
    return [reference, records] + ([ledger_path] if ledger_path else [])


def expected_counts(accounts: int, *, points_per_account: int = POINTS_PER_ACCOUNT, ledger: bool = False,
                    accounts_per_close: int = ACCOUNTS_PER_CLOSE) -> dict[str, int]:
    """Records per entity type that :func:`write_engageip_sample` writes with the same options, over all
    its files: reference types first, then the accounts', then the ledger's; types with none are left
    out. Computed by formula, so a benchmark can check ``read`` without generating or parsing anything.
    Seed, fault rate and passwords change values, never counts."""
    _check_arguments(accounts, points_per_account=points_per_account, accounts_per_close=accounts_per_close)
    counts = Counter(tag for tag, _ in _reference_items(ledger))
    emails = min(points_per_account, len(CONTACT_TYPES))
    counts.update({"User": accounts, "Contact": len(CONTACT_TYPES) * accounts, "ContactEmail": emails * accounts,
                   "ContactPhone": (points_per_account - emails) * accounts, "ChildAccount": accounts // CHILD_EVERY})
    if ledger:
        counts.update({tag: n * accounts for tag, n in LEDGER_MIX.items()})
        counts["CloseInvoice"] = PERIODS * math.ceil(accounts / accounts_per_close)
    return {tag: n for tag, n in counts.items() if n}


def _check_arguments(accounts: int, *, fault_rate: float = 0.0, points_per_account: int = POINTS_PER_ACCOUNT,
                     accounts_per_close: int = ACCOUNTS_PER_CLOSE) -> None:
    if accounts < 0:
        raise ValueError(f"accounts must be ≥ 0, got {accounts}")
    if not 0.0 <= fault_rate <= 1.0:
        raise ValueError(f"fault_rate must be between 0 and 1, got {fault_rate}")
    if not 0 <= points_per_account <= MAX_POINTS:
        raise ValueError(f"points_per_account must be between 0 and {MAX_POINTS}, got {points_per_account}")
    if accounts_per_close < 1:
        raise ValueError(f"accounts_per_close must be ≥ 1, got {accounts_per_close}")


# ---------------------------------------------------------------- reference data

def _reference_items(ledger: bool = False) -> Iterator[tuple[str, Attrs]]:
    """The reference records, as (tag, attributes). The ledger's Services and PaymentTypes only come
    with the ledger, so the default reference data stays what it always was."""
    yield "Owner", [("Name", OWNER)]
    for role in ROLES:
        yield "Role", [("Name", role), ("Owner", OWNER)]
    yield from _named("Culture", CULTURES)
    for code in CURRENCIES:
        yield "Currency", [("Code", code)]
    yield from _named("Language", LANGUAGES)
    yield from _named("StatusType", dict.fromkeys(STATUS_TYPES))
    for name, rates in TAX_RATES.items():
        yield "TaxCode", [("Name", name)] + [(f"Rate{i}", r) for i, r in enumerate(rates, 1)]
    yield from _named("BillGroup", BILL_GROUPS)
    yield from _named("CreditRating", CREDIT_RATINGS)
    yield from _named("ContactType", CONTACT_TYPES)
    yield from _named("ContactPointType", CONTACT_POINT_TYPES)
    if ledger:
        yield from _named("Service", SERVICES)
        yield from _named("PaymentType", PAYMENT_TYPES)


def _named(tag: str, names: Iterable[str]) -> Iterator[tuple[str, Attrs]]:
    return ((tag, [("Name", name)]) for name in names)


def reference_lines(ledger: bool = False) -> Iterable[str]:
    """The reference data's elements, one line each (``ops.bench.bigfile`` writes the same ones)."""
    return (_element(tag, attrs) for tag, attrs in _reference_items(ledger))


def _write_reference(path: Path, ledger: bool) -> Path:
    with _open_xml(path) as out:
        out.write(XML_HEADER)
        out.writelines(reference_lines(ledger))
        out.write(XML_FOOTER)
    return path


# ---------------------------------------------------------------- accounts

def _write_accounts(path: Path, accounts: int, seed: int, faults: int, shape: _Shape,
                    ledger: tuple[Path | None, int]) -> Path:
    """One pass over the accounts, each record type spooled to its own file, then concatenated; the
    ledger, when asked for, is written in the same pass, block by block, to its own file."""
    rng = random.Random(seed)
    ledger_path, accounts_per_close = ledger
    with tempfile.TemporaryDirectory(prefix=".sample-", dir=path.parent) as spool_dir:
        parts = [Path(spool_dir) / f"{name}.part" for name in SECTIONS]
        with ExitStack() as stack:
            spools = {name: stack.enter_context(_open_xml(part)) for name, part in zip(SECTIONS, parts, strict=True)}
            book = (_LedgerWriter(stack.enter_context(_open_xml(ledger_path)), seed, accounts_per_close)
                    if ledger_path else None)
            for index in range(accounts):
                account = _write_account(spools, rng, index, _is_faulty(index, faults, accounts), shape)
                if book:
                    book.add(account)
            if book:
                book.finish()
        _concatenate(path, parts)
    return path


def _fault_count(accounts: int, fault_rate: float) -> int:
    """accounts × fault_rate rounded half up (Python's round() would send 2.5 to 2)."""
    return math.floor(accounts * fault_rate + 0.5)


def _is_faulty(index: int, faults: int, accounts: int) -> bool:
    """Exactly ``faults`` of ``accounts`` indexes answer True, evenly spaced (integer arithmetic only)."""
    return (index + 1) * faults // accounts > index * faults // accounts


def _write_account(spools: dict[str, IO[str]], rng: random.Random, index: int, faulty: bool,
                   shape: _Shape) -> _Account:
    name = account_name(index)
    company = rng.choice(COMPANIES) if rng.random() < 0.3 else None
    user, french = _user(rng, name, business=company is not None, faulty=faulty, password=shape.passwords)
    spools["User"].write(user)
    first_names = rng.sample(FIRST_NAMES, 2)  # distinct, so the two ContactNames never collide
    last_name = rng.choice(LAST_NAMES)
    for number, (first, contact_type) in enumerate(zip(first_names, CONTACT_TYPES, strict=True)):
        last = last_name if company is None or rng.random() < 0.5 else rng.choice(LAST_NAMES)
        _write_contact(spools, rng, name, (first, last), contact_type, company, _points(number, shape.points))
    if index % CHILD_EVERY == CHILD_EVERY - 1:
        parent = account_name(rng.randrange(index))  # always an earlier account: no cycles
        spools["ChildAccount"].write(_element("ChildAccount", [("Name", name), ("Parent", parent)]))
    return _Account(name, company is not None, french)


def _points(contact: int, points: int) -> tuple[bool, bool]:
    """Whether the ``contact``-th contact (0-based) gets its email and its phone: the points are taken in
    the order email 1, email 2, phone 1, phone 2, so 3 gives both emails and the first phone."""
    return contact < points, len(CONTACT_TYPES) + contact < points


def account_name(index: int) -> str:
    """The account Name of the index-th account (0-based); a pure function so parents need no lookup."""
    return f"CUST{index + 1:07d}"


def _user(rng: random.Random, name: str, *, business: bool, faulty: bool, password: bool) -> tuple[str, bool]:
    """The User element and whether the account is French-speaking. The password is drawn even when
    left out, so leaving it out changes nothing else in the file."""
    french = rng.random() < 0.15
    status = rng.choice(STATUS_TYPES)
    tax_code = rng.choice(UNKNOWN_TAX_CODES) if faulty else _tax_code(business)
    secret = _password(rng)
    attrs = [
        ("Name", name), ("Password", secret), ("Owner", OWNER), ("Role", ROLES[int(business)]),
        ("Culture", CULTURES[int(french)]), ("Currency", CURRENCIES[int(french)]),
        ("Language", LANGUAGES[int(french)]),
        ("CreatedDate", _date(rng)), ("StatusType", status), ("TaxCode", tax_code),
        ("BillGroup", BILL_GROUPS[int(business)]), ("CreditRating", rng.choice(CREDIT_RATINGS)),
        ("BillDay", str(rng.randint(1, 28))),
    ]
    if status != "Active":
        attrs.append(("DisableReason", "Non-Payment" if status == "Suspended" else "Cancelled"))
    if not password:
        attrs.remove(("Password", secret))
    return _element("User", attrs), french


def _tax_code(business: bool) -> str:
    return "Commercial" if business else "Residential"


def _write_contact(spools: dict[str, IO[str]], rng: random.Random, user: str, person: tuple[str, str],
                   contact_type: str, company: str | None, points: tuple[bool, bool]) -> None:
    """A contact and its email and phone; a point left out is still drawn, so the stream does not shift."""
    first, last = person
    contact_name = f"{first} {last}"
    attrs = [("User", user), ("ContactName", contact_name), ("ContactFirstName", first),
             ("ContactLastName", last), ("ContactTitle", rng.choice(TITLES) if company else "Account Holder"),
             ("ContactType", contact_type)]
    if company:
        attrs.append(("ContactCompany", company))
    key = [("User", user), ("ContactName", contact_name)]
    spools["Contact"].write(_element("Contact", attrs))
    with_email, with_phone = points
    email = f"{slug(first)}.{slug(last)}{rng.randint(1, 999)}@{_email_domain(rng, company)}"
    if with_email:
        spools["ContactEmail"].write(_element("ContactEmail", key + [("Email", email), ("ContactType", contact_type)]))
    phone_type = "Work Phone" if company else rng.choice(("Home Phone", "Mobile Phone"))
    phone = f"({rng.choice(AREA_CODES)}) 555-{rng.randrange(10000):04d}"
    if with_phone:
        spools["ContactPhone"].write(_element(
            "ContactPhone", key + [("Phone", phone), ("ContactType", contact_type), ("ContactPointType", phone_type)]))


def _email_domain(rng: random.Random, company: str | None) -> str:
    return f"{slug(company)}.com" if company else rng.choice(EMAIL_DOMAINS)


def _password(rng: random.Random) -> str:
    return f"{rng.choice(PASSWORD_WORDS)}{rng.randint(1000, 9999)}{rng.choice('!#$%*')}"


def _date(rng: random.Random) -> str:
    """Month-first, as the default run expects; day ≤ 28 so every date is real."""
    day = f"{rng.randint(1, 12)}/{rng.randint(1, 28)}/{rng.randint(2000, 2007)}"
    if rng.random() < 0.5:
        return day
    return f"{day} {rng.randint(1, 12)}:{rng.randrange(60):02d}:{rng.randrange(60):02d} {rng.choice(('AM', 'PM'))}"


_SLUGS: dict[str, str] = {}


def slug(text: str) -> str:
    """ASCII letters and digits only ('Côté' → 'cote', 'Smith & Sons' → 'smithsons'); memoised, the inputs are few."""
    slug = _SLUGS.get(text)
    if slug is None:
        ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
        slug = _SLUGS[text] = re.sub(r"[^a-z0-9]", "", ascii_text.lower())
    return slug


# ---------------------------------------------------------------- ledger

class _LedgerWriter:
    """Writes ``ledger.xml`` a block of accounts at a time: for each month, the block's records for that
    month in account order, then one bare CloseInvoice; the April payments last, with no close (they open
    nothing). Memory holds one block's lines, whatever the number of accounts."""

    def __init__(self, out: IO[str], seed: int, accounts_per_close: int) -> None:
        self.out = out
        self.rng = random.Random(f"engageip-ledger-{seed}")  # its own stream: accounts.xml stays the same
        self.accounts_per_close = accounts_per_close
        self.block: list[list[str]] = [[] for _ in range(PAYMENTS_PER_ACCOUNT)]
        self.in_block = 0
        out.write(LEDGER_HEADER)

    def add(self, account: _Account) -> None:
        for section, lines in zip(self.block, _account_ledger(self.rng, account), strict=True):
            section.extend(lines)
        self.in_block += 1
        if self.in_block == self.accounts_per_close:
            self._flush()

    def finish(self) -> None:
        if self.in_block:
            self._flush()
        self.out.write(LEDGER_FOOTER)

    def _flush(self) -> None:
        for month, section in enumerate(self.block):
            self.out.writelines(section)
            if month < PERIODS:
                self.out.write(_element("CloseInvoice", [("CloseInvoice", "")]))
            section.clear()
        self.in_block = 0


@dataclass
class _Invoice:
    """A month's charges as lines, and what the customer owes for them (cents, taxes included)."""

    lines: list[str]
    total: int


def _account_ledger(rng: random.Random, account: _Account) -> list[list[str]]:
    """One account's ledger records by section: January (opening balance, its payment, January's lines),
    February and March (the previous invoice's payment, the month's lines), April (March's payment).
    The opening balance comes first, so its invoice is the account's invoice 1 and the months are 2–4."""
    access = rng.choice(ACCESS[account.business])
    offers = [access, *rng.sample(EXTRAS[account.business], EXTRAS_PER_ACCOUNT)]
    credit_months = [rng.randrange(PERIODS) for _ in range(CREDITS_PER_ACCOUNT)]
    payer = _Payer(rng, account)
    stamp = " 12:00:00 AM" if rng.random() < 0.3 else ""  # some exports carry a midnight time, some not
    opening_line, opening = _opening_balance(rng, account)
    sections: list[list[str]] = [[opening_line]] + [[] for _ in range(PERIODS)]
    totals = [opening]
    for month in range(PERIODS):
        invoice = _month(rng, account, offers, credit_months.count(month), month, stamp)
        sections[month] += invoice.lines
        totals.append(invoice.total)
    for number, total in enumerate(totals):
        sections[number].insert(int(number == 0), payer.payment(number, total))  # after the opening balance
    return sections


def _opening_balance(rng: random.Random, account: _Account) -> tuple[str, int]:
    """The balance brought forward on 31 December: usually owed, sometimes a credit."""
    top = 60000 if account.business else 25000
    cents = rng.randint(500, top)
    if rng.random() < OPENING_CREDIT_SHARE:
        cents = -rng.randint(500, 5000)
    words = (("Balance brought forward from legacy billing", "Credit balance brought forward from legacy billing"),
             ("Solde reporté de l'ancien système de facturation", "Solde créditeur reporté de l'ancien système"))
    description = words[account.french][cents < 0]
    attrs = [("User", account.name), ("Date", f"12/31/{LEDGER_YEAR - 1}"), ("Amount", _signed(cents)),
             ("Description", description)]
    return _element("OpeningBalance", attrs), cents


def _month(rng: random.Random, account: _Account, offers: Sequence[Offer], credits: int, month: int,
           stamp: str) -> _Invoice:
    """A month's Credits (given during the month) and its Debits (one per offer, billed on the last day
    for the whole month), in date order."""
    code = _tax_code(account.business)
    lines, total = [], 0
    for _ in range(credits):
        line, amount = _credit(rng, account, offers[0], month, code)
        lines.append(line)
        total -= amount
    period = (f"{month + 1}/1/{LEDGER_YEAR}", f"{month + 1}/{_days_in(month + 1)}/{LEDGER_YEAR}")
    for offer in offers:
        taxes = _taxes(offer.cents, code)
        label = offer.french if account.french else offer.english
        attrs = [("User", account.name), ("Date", period[1] + stamp), ("Debit", _money(offer.cents))]
        attrs += [(f"Tax{i}", _money(tax)) for i, tax in enumerate(taxes, 1)]
        attrs += [("TaxCode", code), ("Description", f"{label} - {MONTHS[account.french][month]} {LEDGER_YEAR}"),
                  ("Package", offer.service), ("PeriodStart", period[0]), ("PeriodEnd", period[1])]
        lines.append(_element("Debit", attrs))
        total += offer.cents + sum(taxes)
    return _Invoice(lines, total)


def _credit(rng: random.Random, account: _Account, access: Offer, month: int, code: str) -> tuple[str, int]:
    """One of three credits a support desk gives: an outage credit on the access service (taxes given
    back with ApplyTax), mailboxes credited with Bulk, or a round goodwill credit. Returns it and its total."""
    date = f"{month + 1}/{rng.randint(3, 27)}/{LEDGER_YEAR}"  # before the month-end debits
    base: Attrs = [("User", account.name), ("Date", date)]
    kind = rng.randrange(3)
    if kind == 0:
        days = rng.randint(1, 5)
        cents = max(access.cents * days // 30, 1)
        words = (f"Service outage credit - {days} day(s)", f"Crédit pour panne de service - {days} jour(s)")
        attrs = base + [("Credit", _money(cents)), ("ApplyTax", "True"), ("TaxCode", code),
                        ("Description", words[account.french]), ("Package", access.service)]
        return _element("Credit", attrs), cents + sum(_taxes(cents, code))
    if kind == 1:
        bulk = rng.randint(2, 5)
        words = ("Unused mailboxes credit", "Crédit boîtes aux lettres inutilisées")
        attrs = base + [("Credit", _money(BULK_MAILBOX_CENTS)), ("Bulk", str(bulk)), ("Description", words[account.french]),
                        ("Package", "Email Mailbox")]
        return _element("Credit", attrs), BULK_MAILBOX_CENTS * bulk
    cents = rng.choice((500, 1000, 2000))
    words = ("Goodwill credit", "Crédit de courtoisie")
    return _element("Credit", base + [("Credit", _money(cents)), ("Description", words[account.french])]), cents


class _Payer:
    """An account's way of paying: one payment type, one card or one cheque book, kept all quarter."""

    def __init__(self, rng: random.Random, account: _Account) -> None:
        self.rng, self.account = rng, account
        self.kind = rng.choice(PAYMENT_CHOICES)
        self.cheque = rng.randint(100, 9000)
        self.card = f"{rng.randrange(10000):04d}"

    def payment(self, number: int, total: int) -> str:
        """The payment of the account's invoice ``number + 1`` (0 is the opening balance), received the
        month after it. A credit or a zero balance gets a prepayment instead, which names nothing."""
        rng, month = self.rng, number + 1
        date = f"{month}/{rng.randint(2, 28)}/{LEDGER_YEAR}"
        if self.kind in ("ACH", "Credit Card"):
            date += " 6:00:00 AM" if self.kind == "ACH" else f" {rng.randint(1, 11)}:{rng.randrange(60):02d}:00 PM"
        named = total > 0 and rng.random() < NAMED_PAYMENT_SHARE
        attrs = [("User", self.account.name), ("Date", date), ("Credit", _money(self._amount(total))),
                 ("Description", self._description()), ("PaymentType", self.kind)]
        if named:
            attrs.append(("Invoice", f"{self.account.name}-{number + 1}"))
        return _element("Payment", attrs)

    def _amount(self, total: int) -> int:
        """Mostly the invoice in full; sometimes rounded up to the next five dollars, sometimes half."""
        if total <= 0:
            return self.rng.randint(10, 50) * 100
        roll = self.rng.random()
        if roll < 0.75:
            return total
        if roll < 0.9:
            return (total // 500 + 1) * 500
        return max(total // 2, 100)

    def _description(self) -> str:
        french = self.account.french
        if self.kind == "Check":
            self.cheque += 1
            return f"Chèque n° {self.cheque}" if french else f"Check #{self.cheque}"
        words = {"Credit Card": (f"Visa ending {self.card} - thank you", f"Visa se terminant par {self.card} - merci"),
                 "ACH": ("ACH debit - thank you", "Prélèvement automatique - merci"),
                 "Cash": ("Cash at the Main Street office", "Comptant au comptoir de la rue Main"),
                 "Money Order": ("Money order - thank you", "Mandat-poste - merci")}
        return words[self.kind][french]


@functools.lru_cache(maxsize=4096)
def _taxes(cents: int, code: str) -> tuple[int, ...]:
    """Each rate of the TaxCode on the amount, to the cent, half up (as the loader computes ApplyTax).
    Memoised: prices are few, and Decimal arithmetic per line showed in the profile."""
    return tuple(int((Decimal(cents) * Decimal(rate)).quantize(Decimal(1), rounding=ROUND_HALF_UP))
                 for rate in TAX_RATES[code])


def _days_in(month: int) -> int:
    """Days in ``month`` of LEDGER_YEAR (2008 is a leap year: February ends on the 29th, a date the reader must accept)."""
    return calendar.monthrange(LEDGER_YEAR, month)[1]


def _money(cents: int) -> str:
    """Cents as a plain decimal with two places: integers all the way, no float ever touches money."""
    return f"{cents // 100}.{cents % 100:02d}"


def _signed(cents: int) -> str:
    return f"-{_money(-cents)}" if cents < 0 else _money(cents)


# ---------------------------------------------------------------- writing

_NEEDS_QUOTING = re.compile(r'[&<>"\n\r\t]')


def _element(tag: str, attrs: Sequence[tuple[str, str]]) -> str:
    body = " ".join(f"{name}={_quoted(value)}" for name, value in attrs)
    return f"  <{tag} {body}/>\n"


def _quoted(value: str) -> str:
    """``quoteattr``, with a fast path for the common value that needs nothing escaped (same bytes):
    quoting was most of the time spent writing a ledger."""
    return quoteattr(value) if _NEEDS_QUOTING.search(value) else f'"{value}"'


def _open_xml(path: Path) -> IO[str]:
    return open(path, "w", encoding="utf-8", newline="\n")


def _concatenate(path: Path, parts: Sequence[Path]) -> None:
    with _open_xml(path) as out:
        out.write(XML_HEADER)
        for part in parts:
            with open(part, encoding="utf-8", newline="") as src:
                shutil.copyfileobj(src, out)
        out.write(XML_FOOTER)
