"""Synthetic engageip files of a given size in bytes, for memory and throughput benchmarks.

``ops.sample`` writes realistic exports by record count (seeded random choices, records grouped by
type through per-type spools): right for load tests, but too slow for the multi-gigabyte files that
prove the producer's memory stays flat. Here every value is derived from the account's index by
arithmetic and written with plain string formatting, a block of accounts at a time, so a 2 GB file
takes seconds, is byte-for-byte the same on every call, and the writer's memory does not depend on
the size asked for.

The file is valid for the reader (zero read-time errors): the reference data of ``ops.sample`` first,
then per account one ``User`` (``CUST0000001``…), two ``Contact`` records with distinct names, and a
``ContactEmail`` and a ``ContactPhone`` for each contact. Values carry ``&`` and accents, which must be
escaped and decoded, and every User a ``Password``, which the producer encrypts as it would in a run.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from ops.sample import (
    AREA_CODES,
    BILL_GROUPS,
    COMPANIES,
    CONTACT_TYPES,
    CREDIT_RATINGS,
    CULTURES,
    CURRENCIES,
    EMAIL_DOMAINS,
    FIRST_NAMES,
    LANGUAGES,
    LAST_NAMES,
    OWNER,
    PASSWORD_WORDS,
    ROLES,
    TITLES,
    XML_FOOTER,
    XML_HEADER,
    account_name,
    reference_lines,
    slug,
)

__all__ = ["RECORDS_PER_ACCOUNT", "BigFile", "parse_size", "write_big_engageip"]

RECORDS_PER_ACCOUNT = 7
"""User, 2 × Contact, 2 × ContactEmail, 2 × ContactPhone."""
BLOCK = 1000
"""Accounts formatted and written at once: large enough to amortise the write, small enough to stay flat."""
STATUS_CYCLE = ("Active",) * 9 + ("Suspended",)
"""Every tenth account suspended (with a DisableReason); 'Closed' never, so each account has a live status."""


@dataclass(frozen=True)
class BigFile:
    """What was written: the exact size, and the records the reader must yield (reference data included)."""

    path: Path
    size: int
    accounts: int
    records: int
    reference_records: int


def _attr(text: str) -> str:
    """Escaped for a double-quoted attribute value (done once per table entry, never per record)."""
    return escape(text, {'"': "&quot;"})


def _tables() -> dict[str, tuple[str, ...]]:
    """Every value an account draws on, pre-escaped, so writing a record is one f-string and no escaping."""
    return {
        "first": tuple(_attr(n) for n in FIRST_NAMES),
        "first_slug": tuple(slug(n) for n in FIRST_NAMES),
        "last": tuple(_attr(n) for n in LAST_NAMES),
        "last_slug": tuple(slug(n) for n in LAST_NAMES),
        "company": tuple(_attr(n) for n in COMPANIES),
        "company_domain": tuple(f"{slug(n)}.com" for n in COMPANIES),
        "domain": EMAIL_DOMAINS,
        "title": tuple(_attr(n) for n in TITLES),
        "word": tuple(_attr(n) for n in PASSWORD_WORDS),
        "area": AREA_CODES,
        "rating": tuple(_attr(n) for n in CREDIT_RATINGS),
    }


def _account_block(start: int, stop: int, t: dict[str, tuple[str, ...]]) -> str:
    """The records of accounts ``start``…``stop - 1``, every value a function of the index alone."""
    owner = _attr(OWNER)
    billing, technical = (_attr(n) for n in CONTACT_TYPES)
    first, first_slug, last, last_slug = t["first"], t["first_slug"], t["last"], t["last_slug"]
    company_t, company_domain, domain_t, title_t = t["company"], t["company_domain"], t["domain"], t["title"]
    word_t, area_t, rating_t = t["word"], t["area"], t["rating"]
    nf, nl, nc, nd, nt = len(first), len(last), len(company_t), len(domain_t), len(title_t)
    out: list[str] = []
    add = out.append
    for i in range(start, stop):
        name = account_name(i)
        business = i % 10 < 3
        french = i % 7 == 3
        kind = int(business)
        lang = int(french)
        status = STATUS_CYCLE[i % len(STATUS_CYCLE)]
        disable = ' DisableReason="Non-Payment"' if status != "Active" else ""
        created = f"{i % 12 + 1}/{i % 28 + 1}/{2000 + i % 8}"
        if i & 1:
            created += f" {i % 12 + 1}:{i % 60:02d}:{(i // 60) % 60:02d} {'PM' if i & 2 else 'AM'}"
        add(f'  <User Name="{name}" Password="{word_t[i % len(word_t)]}{1000 + i % 9000}!" Owner="{owner}" '
            f'Role="{ROLES[kind]}" Culture="{CULTURES[lang]}" Currency="{CURRENCIES[lang]}" Language="{LANGUAGES[lang]}" '
            f'CreatedDate="{created}" StatusType="{status}" TaxCode="{"Commercial" if business else "Residential"}" '
            f'BillGroup="{BILL_GROUPS[kind]}" CreditRating="{rating_t[i % len(rating_t)]}" BillDay="{i % 28 + 1}"{disable}/>\n')
        f1 = i % nf
        f2 = (f1 + 1 + (i // nf) % (nf - 1)) % nf  # never f1: the two contact names of an account differ
        ln = (i // 3) % nl
        company = f' ContactCompany="{company_t[i % nc]}"' if business else ""
        title = title_t[i % nt] if business else "Account Holder"
        domain = company_domain[i % nc] if business else domain_t[i % nd]
        phone_kind = "Work Phone" if business else ("Home Phone" if i & 4 else "Mobile Phone")
        for f, ctype, n in ((f1, billing, i % 997 + 1), (f2, technical, i % 991 + 1)):
            key = f'User="{name}" ContactName="{first[f]} {last[ln]}"'
            add(f'  <Contact {key} ContactFirstName="{first[f]}" ContactLastName="{last[ln]}" ContactTitle="{title}" '
                f'ContactType="{ctype}"{company}/>\n'
                f'  <ContactEmail {key} Email="{first_slug[f]}.{last_slug[ln]}{n}@{domain}" ContactType="{ctype}"/>\n'
                f'  <ContactPhone {key} Phone="({area_t[(i + n) % len(area_t)]}) 555-{(i * 7 + n) % 10000:04d}" '
                f'ContactType="{ctype}" ContactPointType="{phone_kind}"/>\n')
    return "".join(out)


def write_big_engageip(path: Path, size: int) -> BigFile:
    """Write an engageip file of at most ``size`` bytes and within one account of it (never less than the
    reference data: whole accounts only), and say what is in it, so a test knows how many records to expect."""
    if size < 0:
        raise ValueError(f"size must be ≥ 0, got {size}")
    tables = _tables()
    reference = list(reference_lines())
    footer = XML_FOOTER.encode()
    accounts = 0
    with open(path, "wb") as out:
        head = (XML_HEADER + "".join(reference)).encode()
        out.write(head)
        written = len(head)
        budget = size - len(footer)
        step = BLOCK
        while step:
            data = _account_block(accounts, accounts + step, tables).encode()
            if written + len(data) > budget:
                step //= 10  # the tail: smaller blocks, down to single accounts, until one does not fit
                continue
            out.write(data)
            written += len(data)
            accounts += step
        out.write(footer)
        written += len(footer)
    return BigFile(path, written, accounts, len(reference) + accounts * RECORDS_PER_ACCOUNT, len(reference))


def parse_size(text: str) -> int:
    """``2G``, ``300M``, ``64k``, ``1.5GB`` or a plain byte count (binary multiples: 1G = 2**30 bytes)."""
    units = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    cleaned = text.strip().upper().removesuffix("IB").removesuffix("B")
    number = cleaned.rstrip("KMGT")
    unit = cleaned[len(number):]
    if unit not in units or not number:
        raise ValueError(f"not a size: {text!r} (examples: 2G, 300M, 65536)")
    return int(float(number) * units[unit])


def main(argv: list[str] | None = None) -> int:
    """``python -m ops.bench.bigfile OUT.xml 2G``: write a file and print what is in it."""
    parser = argparse.ArgumentParser(prog="python -m ops.bench.bigfile", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("path", type=Path)
    parser.add_argument("size", type=parse_size, help="about how many bytes: 2G, 300M, …")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    big = write_big_engageip(args.path, args.size)
    seconds = time.perf_counter() - started
    print(f"{big.path}: {big.size:,} bytes, {big.accounts:,} accounts, {big.records:,} records, "
          f"{seconds:.1f} s ({big.size / 1e6 / max(seconds, 1e-9):.0f} MB/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
