"""engageip services, account attributes, tickets and payment methods (docs/formats.md) end to end on
real Redis, real workers, SQLite and PostgreSQL: every record type lands in its table; every rule
dead-letters its failing case with a clear message, and children of a dead parent are blocked;
ticket attachments respect the size limit and round-trip byte for byte in both stores (stored once
per content); card and bank account numbers never appear in clear; a re-run adds nothing; a
dead-lettered card replays once its account exists.

Case files are in tests/cases/services (reference.xml; records.xml: every type, all valid;
faults.xml: one failing case per rule, by line). Large attachments are generated in tmp_path."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import CASES, Cluster
from tests.integration.test_csv import counts, spellings, vault_of, with_env
from tests.integration.test_ledger import money
from tests.integration.test_secrets import B64, RedisRecorder

pytestmark = pytest.mark.slow

SV = CASES / "services"
REFERENCE = str(SV / "reference.xml")
RECORDS = str(SV / "records.xml")
FAULTS = str(SV / "faults.xml")
D = Decimal
MB = 1024 * 1024

REFERENCE_COUNTS = {
    "Owner": (1, 1, 0, 0, 0), "Package": (3, 3, 0, 0, 0), "Service": (2, 2, 0, 0, 0), "PackageService": (3, 3, 0, 0, 0),
    "NoteType": (2, 2, 0, 0, 0), "ProfileQuestion": (2, 2, 0, 0, 0), "TicketPriority": (2, 2, 0, 0, 0),
    "TicketCategory": (2, 2, 0, 0, 0), "TaxClass": (1, 1, 0, 0, 0), "TaxCode": (2, 2, 0, 0, 0),
}
# records.xml: entity → (read, committed, skipped, dead, blocked)
RECORD_COUNTS = {
    "User": (2, 2, 0, 0, 0), "UserPackage": (3, 3, 0, 0, 0), "UserService": (4, 4, 0, 0, 0),
    "UserPackageAttributeDiscount": (3, 3, 0, 0, 0), "UserAttributeExpiryDate": (2, 2, 0, 0, 0),
    "UserAttributeTaxClass": (1, 1, 0, 0, 0), "UserAttributeTaxCode": (1, 1, 0, 0, 0),
    "UserAttributeTaxExempt": (2, 2, 0, 0, 0), "UserNote": (3, 3, 0, 0, 0), "UserProfileAnswer": (2, 2, 0, 0, 0),
    "UserExtendedAttribute": (2, 2, 0, 0, 0), "UserPackageExtendedAttribute": (1, 1, 0, 0, 0),
    "UserServiceAttribute": (2, 2, 0, 0, 0), "UserServiceProfileAnswer": (2, 2, 0, 0, 0), "Ticket": (2, 2, 0, 0, 0),
    "TicketTracking": (3, 3, 0, 0, 0), "TicketAttachment": (4, 4, 0, 0, 0), "UserPaymentMethodCash": (1, 1, 0, 0, 0),
    "UserPaymentMethodCheck": (2, 2, 0, 0, 0), "UserPaymentMethodCreditCard": (3, 3, 0, 0, 0),
    "UserPaymentMethodACH": (2, 2, 0, 0, 0),
}
# faults.xml on its own (after reference.xml)
FAULT_COUNTS = {
    "User": (2, 2, 0, 0, 0), "UserPackage": (5, 3, 0, 2, 0), "UserService": (5, 3, 0, 1, 1),
    "UserPackageAttributeDiscount": (3, 0, 0, 3, 0), "UserServiceAttribute": (1, 0, 0, 0, 1),
    "UserProfileAnswer": (1, 0, 0, 1, 0), "UserNote": (1, 0, 0, 1, 0), "Ticket": (3, 1, 0, 2, 0),
    "TicketTracking": (2, 0, 0, 1, 1), "TicketAttachment": (2, 0, 0, 1, 1), "UserPaymentMethodCreditCard": (2, 0, 0, 2, 0),
    "UserPaymentMethodACH": (2, 0, 0, 2, 0),
}
SECRET_MASK = "«secret»"
# faults.xml line: entity, outcome, stage, error_class, field, value, message fragment, hint fragment
FAULT_LETTERS = {
    13: ("UserPackageAttributeDiscount", "dead", "read", "InvalidValue", "Amount", "130", "Percent discount of 130 is over 100",
         "0 to 100"),
    14: ("UserPackageAttributeDiscount", "dead", "read", "InvalidValue", "Amount", "-5", "cannot be negative", "positive"),
    15: ("UserPackageAttributeDiscount", "dead", "read", "InvalidValue", "DiscountType", "Loyalty",
         "DiscountType 'Loyalty' is not one of Fixed, Price, Percent", ""),
    16: ("UserService", "dead", "load", "UnknownReference", "UserPackage", "Gaming", "account 'cy' has no package 'Gaming'",
         "its packages: "),
    17: ("UserPackage", "dead", "load", "UnknownReference", "Name", "Satellite", "Package 'Satellite' not found", "Gaming"),
    18: ("UserPackage", "dead", "read", "InvalidValue", "NextBillDate", "2/30/2007", "is not a real date", ""),
    19: ("UserService", "blocked", "load", "Blocked", None, None, "parent UserPackage 'dee / Home Internet'", ""),
    20: ("UserServiceAttribute", "blocked", "load", "Blocked", None, None, "parent UserPackage 'dee / Home Internet'", ""),
    21: ("UserProfileAnswer", "dead", "load", "UnknownReference", "Question", "how did you hear about us",
         "ProfileQuestion 'how did you hear about us' not found", "did you mean 'How did you hear about us'"),
    22: ("UserNote", "dead", "load", "UnknownReference", "Type", "Complaint", "NoteType 'Complaint' not found",
         "Billing, Default"),
    23: ("Ticket", "dead", "read", "InvalidValue", "Status", "Pending", "Status 'Pending' is not one of Open, Closed", ""),
    24: ("TicketTracking", "blocked", "load", "Blocked", None, None, "parent Ticket 'T-2001'", ""),
    25: ("Ticket", "dead", "load", "UnknownReference", "Priority", "Urgent", "TicketPriority 'Urgent' not found", "High, Normal"),
    26: ("TicketAttachment", "blocked", "load", "Blocked", None, None, "parent Ticket 'T-2002'", ""),
    27: ("TicketTracking", "dead", "load", "UnknownReference", "TicketID", "T-9999", "ticket 'T-9999' not found",
         "load its Ticket first"),
    29: ("TicketAttachment", "dead", "read", "MissingField", "Path", "att/gone.pdf", "attachment file 'att/gone.pdf' not found",
         ""),
    30: ("UserPaymentMethodCreditCard", "dead", "read", "InvalidValue", "CardNumber", SECRET_MASK, "fails the Luhn check", ""),
    31: ("UserPaymentMethodACH", "dead", "read", "InvalidValue", "RoutingNumber", "011000016",
         "RoutingNumber 011000016 fails the ABA routing number checksum", ""),
    32: ("UserPaymentMethodCreditCard", "dead", "read", "InvalidValue", "ExpiryMonth", "13", "ExpiryMonth '13' is not a month",
         "1 to 12"),
    33: ("UserPaymentMethodACH", "dead", "read", "InvalidValue", "AccountType", "Business",
         "AccountType 'Business' is not a bank account type", "Checking or Savings"),
}
BLOCKED_BY = {19: 18, 20: 18, 24: 23, 26: 25}  # blocked line → the dead parent's line
SERVICE_TABLES = ("reference_items", "accounts", "user_packages", "user_services", "package_discounts", "account_attributes",
                  "notes", "profile_answers", "extended_attributes", "tickets", "ticket_tracking", "ticket_attachments",
                  "attachment_blobs", "account_payment_methods")


# -- helpers -------------------------------------------------------------------------------------------


def when(value: Any) -> str | None:
    """A DateTime column read with plain SQL (text on SQLite, datetime on PostgreSQL) as ISO text."""
    if value is None:
        return None
    return (value if isinstance(value, datetime) else datetime.fromisoformat(str(value))).isoformat()


TICKET_COLUMNS = ("account", "priority", "category", "reference", "subject", "description", "resolution", "assigned_to",
                  "logged_by", "logged_at", "time_spent", "status", "closed_by", "closed_at", "contact_method", "from_address",
                  "total_time_spent", "current_time_spent", "last_modified_by", "hidden_resolution", "show_to_user", "due_at")


def ticket_fields(values: Any) -> dict[str, Any]:
    fields = dict(zip(TICKET_COLUMNS, values, strict=True))
    fields.update({c: when(fields[c]) for c in ("logged_at", "closed_at", "due_at")}, show_to_user=bool(fields["show_to_user"]))
    return fields


def rows(cluster: Cluster, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    return sorted((tuple(r) for r in cluster.query(sql, **params)), key=repr)


def table_counts(cluster: Cluster) -> dict[str, int]:
    return {t: cluster.query(f"SELECT count(*) FROM {t}")[0][0] for t in SERVICE_TABLES}


def letters_by_line(cluster: Cluster, source: str) -> dict[int, tuple[Any, ...]]:
    """Open dead letters of one file by line: id, entity, outcome, stage, error_class, field, value, message, hint, blocked_by."""
    found = cluster.query("SELECT line, id, entity, outcome, stage, error_class, field, value, message, hint, blocked_by "
                          "FROM dead_letters WHERE source_file = :f AND state = 'open'", f=source)
    by_line = {r[0]: tuple(r[1:]) for r in found}
    assert len(by_line) == len(found), "one open dead letter per line"
    return by_line


def service_ids(cluster: Cluster) -> dict[tuple[str, str, str], int]:
    """(account, package, service) → user_services.id."""
    found = cluster.query(
        "SELECT a.name, p.name, s.name, us.id FROM user_services us JOIN accounts a ON a.id = us.account_id "
        "JOIN user_packages up ON up.id = us.user_package_id JOIN reference_items p ON p.id = up.package_id "
        "JOIN reference_items s ON s.id = us.service_id")
    return {(r[0], r[1], r[2]): r[3] for r in found}


def write_xml(path: Path, *records: str) -> str:
    path.write_text('<?xml version="1.0" encoding="utf-8"?>\n<Import>\n' + "".join(f"  {r}\n" for r in records) + "</Import>\n",
                    encoding="utf-8")
    return str(path)


def planted_numbers(*paths: str) -> list[str]:
    """Every CardNumber and AccountNumber written in the case files, as written."""
    text = "".join(Path(p).read_text(encoding="utf-8") for p in paths)
    return re.findall(r'(?:CardNumber|AccountNumber)="([^"]+)"', text)


def with_base64_decoded(text: str) -> str:
    """The text plus every base64 blob in it decoded (kombu base64-encodes message bodies)."""
    parts = [text]
    for blob in B64.findall(text):
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                parts.append(decode(blob + "=" * (-len(blob) % 4)).decode("utf-8", "replace"))
            except (binascii.Error, ValueError):
                continue
    return "\n".join(parts)


def redis_contents(url: str) -> str:
    """Every key left in the broker's database and what it holds."""
    client = redis.Redis.from_url(url, decode_responses=False)
    readers: dict[bytes, Any] = {
        b"string": client.get, b"list": lambda k: client.lrange(k, 0, -1), b"hash": client.hgetall,
        b"set": client.smembers, b"zset": lambda k: client.zrange(k, 0, -1), b"stream": client.xrange,
    }
    parts: list[str] = []
    try:
        for key in client.scan_iter(count=500):
            kind = client.type(key)
            value = readers[kind](key) if kind in readers else None
            parts.append(f"{key!r} {kind!r} {value!r}")
    finally:
        client.close()
    return "\n".join(parts)


# -- 1. every record type loads ------------------------------------------------------------------------


def test_every_record_type_loads(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_worker()
    code, doc = cluster.run_json("run", REFERENCE, RECORDS)
    assert doc["state"] == "completed" and code == 0, doc
    assert counts(doc) == {**REFERENCE_COUNTS, **RECORD_COUNTS}
    assert doc["balanced"] is True

    packages = [(r[0], r[1], when(r[2])) for r in rows(
        cluster, "SELECT a.name, p.name, up.next_bill_date FROM user_packages up JOIN accounts a ON a.id = up.account_id "
                 "JOIN reference_items p ON p.id = up.package_id")]
    assert sorted(packages, key=repr) == sorted([
        ("ann", "Home Internet", "2007-02-18T00:00:00"), ("ann", "Business Email", None),
        ("bob", "Home Internet", "2007-03-01T09:30:00"),
    ], key=repr)

    services = rows(cluster, "SELECT a.name, p.name, s.name, CASE WHEN us.optional THEN 1 ELSE 0 END, "
                             "CASE WHEN us.account_id = up.account_id THEN 1 ELSE 0 END FROM user_services us "
                             "JOIN accounts a ON a.id = us.account_id JOIN user_packages up ON up.id = us.user_package_id "
                             "JOIN reference_items p ON p.id = up.package_id JOIN reference_items s ON s.id = us.service_id")
    assert services == [
        ("ann", "Business Email", "Email", 0, 1), ("ann", "Home Internet", "DSL", 0, 1), ("ann", "Home Internet", "Email", 1, 1),
        ("bob", "Home Internet", "DSL", 0, 1),
    ]

    discounts = [(r[0], r[1], r[2], r[3], money(r[4])) for r in rows(
        cluster, "SELECT a.name, p.name, s.name, d.discount_type, d.amount FROM package_discounts d "
                 "JOIN user_packages up ON up.id = d.user_package_id JOIN accounts a ON a.id = up.account_id "
                 "JOIN reference_items p ON p.id = up.package_id LEFT JOIN user_services us ON us.id = d.user_service_id "
                 "LEFT JOIN reference_items s ON s.id = us.service_id")]
    assert sorted(discounts, key=repr) == sorted([
        ("ann", "Home Internet", "DSL", "Percent", D("30")), ("ann", "Business Email", None, "Fixed", D("5.25")),
        ("bob", "Home Internet", None, "Price", D("19.99")),
    ], key=repr)

    attributes = rows(cluster, "SELECT a.name, t.kind, t.key, t.value, r.kind, r.name, t.certificate FROM account_attributes t "
                               "JOIN accounts a ON a.id = t.account_id LEFT JOIN reference_items r ON r.id = t.reference_id")
    assert attributes == sorted([
        ("ann", "expiry_date", "", "2007-03-31T23:59:59", None, None, None),  # a date alone: the end of that day
        ("bob", "expiry_date", "", "2007-04-15T14:30:00", None, None, None),  # a time given is kept
        ("ann", "tax_class", "", "Residential", "TaxClass", "Residential", None),
        ("ann", "tax_code", "", "State", "TaxCode", "State", None),
        ("ann", "tax_exempt", "Exempt", "Exempt", "TaxCode", "Exempt", "EX-1001"),
        ("bob", "tax_exempt", "State", "State", "TaxCode", "State", "ST-77"),
    ], key=repr)

    notes = [(r[0], r[1], r[2], when(r[3])) for r in rows(
        cluster, "SELECT a.name, r.name, n.note, n.noted_at FROM notes n JOIN accounts a ON a.id = n.account_id "
                 "JOIN reference_items r ON r.id = n.note_type_id")]
    assert sorted(notes, key=repr) == sorted([
        ("ann", "Default", "Called about the bill", "2007-01-02T00:00:00"),
        ("ann", "Billing", "Promised a refund & a call back", "2007-01-03T16:05:00"),
        ("bob", "Default", "Moved house", None),
    ], key=repr)

    answers_sql = (
        "SELECT a.name, q.name, p.name, s.name, pa.answer FROM profile_answers pa JOIN accounts a ON a.id = pa.account_id "
        "JOIN reference_items q ON q.id = pa.question_id LEFT JOIN user_services us ON us.id = pa.user_service_id "
        "AND us.account_id = pa.account_id LEFT JOIN user_packages up ON up.id = us.user_package_id "
        "LEFT JOIN reference_items p ON p.id = up.package_id LEFT JOIN reference_items s ON s.id = us.service_id")
    answers = [
        ("ann", "How did you hear about us", None, None, "Radio"), ("bob", "Modem model", None, None, "ZyXEL P-660"),
        # no UserServiceID: both of ann's Email services (under two packages) get the answer
        ("ann", "Modem model", "Home Internet", "Email", "none"), ("ann", "Modem model", "Business Email", "Email", "none"),
        ("bob", "Modem model", "Home Internet", "DSL", "ZyXEL"),
    ]
    assert rows(cluster, answers_sql) == sorted(answers, key=repr)

    owners: dict[tuple[str, int], str] = {("account", i): n for i, n in cluster.query("SELECT id, name FROM accounts")}
    owners.update({("user_package", i): f"{a}/{p}" for i, a, p in cluster.query(
        "SELECT up.id, a.name, p.name FROM user_packages up JOIN accounts a ON a.id = up.account_id "
        "JOIN reference_items p ON p.id = up.package_id")})
    owners.update({("user_service", i): "/".join(k) for k, i in service_ids(cluster).items()})
    extended = sorted(((kind, owners[(kind, owner)], name, value) for kind, owner, name, value in cluster.query(
        "SELECT owner_kind, owner_id, name, value FROM extended_attributes")), key=repr)
    assert extended == sorted([
        ("account", "ann", "Region", "North"), ("account", "bob", "Region", "South"),
        ("user_package", "ann/Home Internet", "Modem", "56k"),
        ("user_service", "ann/Home Internet/DSL", "Speed", "8 Mbit"),
        ("user_service", "bob/Home Internet/DSL", "Speed", "2 Mbit"),
    ], key=repr)

    tickets = {r[0]: ticket_fields(r[1:]) for r in cluster.query(
        f"SELECT t.source_id, a.name, pr.name, cat.name, {', '.join('t.' + c for c in TICKET_COLUMNS[3:])} FROM tickets t "
        "JOIN accounts a ON a.id = t.account_id LEFT JOIN reference_items pr ON pr.id = t.priority_id "
        "LEFT JOIN reference_items cat ON cat.id = t.category_id")}
    assert tickets == {
        "T-1001": {
            "account": "ann", "priority": "High", "category": "Technical", "reference": "REF-7", "subject": "DSL slow",
            "description": "Slow in the evenings", "resolution": "Replaced the filter", "assigned_to": "nburns",
            "logged_by": "mpower", "logged_at": "2007-01-15T12:51:52", "time_spent": 30, "status": "Closed",
            "closed_by": "nburns", "closed_at": "2007-02-18T12:51:52", "contact_method": "Phone",
            "from_address": "ann@example.com", "total_time_spent": 45, "current_time_spent": 15, "last_modified_by": "jsmith",
            "hidden_resolution": "Line fault at the exchange", "show_to_user": True, "due_at": "2007-01-20T00:00:00",
        },
        "T-1002": {
            "account": "bob", "priority": None, "category": None, "reference": None, "subject": "Invoice question",
            "description": None, "resolution": None, "assigned_to": None, "logged_by": None, "logged_at": "2007-02-01T00:00:00",
            "time_spent": None, "status": "Open", "closed_by": None, "closed_at": None, "contact_method": None,
            "from_address": None, "total_time_spent": None, "current_time_spent": None, "last_modified_by": None,
            "hidden_resolution": None, "show_to_user": False, "due_at": None,
        },
    }
    assert cluster.query("SELECT count(*) FROM tickets WHERE priority_id IN (SELECT id FROM reference_items "
                         "WHERE kind = 'TicketPriority') AND category_id IN (SELECT id FROM reference_items "
                         "WHERE kind = 'TicketCategory')") == [(1,)], "priority and category point at their own kinds"

    tracking = sorted(((r[0], when(r[1]), r[2], r[3], bool(r[4])) for r in cluster.query(
        "SELECT t.source_id, k.tracked_at, k.author, k.text, k.hidden FROM ticket_tracking k "
        "JOIN tickets t ON t.id = k.ticket_id")),
        key=repr)
    assert tracking == sorted([
        ("T-1001", "2007-01-16T00:00:00", "nburns", "Checked the line", False),
        ("T-1001", "2007-01-17T08:00:00", "nburns", "Exchange fault, not the customer's", True),
        ("T-1002", "2007-02-02T00:00:00", None, "Sent a copy", False),
    ], key=repr)

    contents = {name: (SV / "att" / name).read_bytes() for name in ("line-test.txt", "line-test-copy.txt", "screenshot.png")}
    contents["invoice.txt"] = b"Invoice copy sent on 2/2/2007"
    assert contents["line-test.txt"] == contents["line-test-copy.txt"]
    attachments = rows(cluster, "SELECT t.source_id, x.file_name, x.sha256, x.size, x.store FROM ticket_attachments x "
                                "JOIN tickets t ON t.id = x.ticket_id")
    assert attachments == sorted([
        (ticket, name, hashlib.sha256(data).hexdigest(), len(data), "database")
        for ticket, name, data in [("T-1001", n, contents[n]) for n in ("line-test.txt", "line-test-copy.txt", "screenshot.png")]
        + [("T-1002", "invoice.txt", contents["invoice.txt"])]
    ], key=repr)
    blobs = {sha: bytes(data) for sha, data in cluster.query("SELECT sha256, data FROM attachment_blobs")}
    assert blobs == {hashlib.sha256(d).hexdigest(): d for d in contents.values()}, "the same bytes under two names: stored once"

    methods = rows(cluster, "SELECT a.name, p.kind, CASE WHEN p.is_default THEN 1 ELSE 0 END, p.last4, p.holder, p.card_type, "
                            "p.expiry_month, p.expiry_year, p.bank_name, p.routing_number, p.account_type, p.secret "
                            "FROM account_payment_methods p JOIN accounts a ON a.id = p.account_id")
    assert [r[:-1] for r in methods] == sorted([
        ("ann", "cash", 1, None, None, None, None, None, None, None, None),
        ("ann", "check", 0, None, None, None, None, None, None, None, None),
        ("bob", "check", 0, None, None, None, None, None, None, None, None),
        ("ann", "card", 0, "1111", "Ann Archer", "Visa", 12, 2028, None, None, None),
        ("bob", "card", 1, "4444", "Bob Baker", "MasterCard", 7, 2029, None, None, None),
        ("bob", "card", 0, "0005", "Bob Baker", "Amex", 1, 2030, None, None, None),
        ("ann", "ach", 0, "5601", "Ann Archer", None, None, None, "First National", "011000015", "Checking"),
        ("bob", "ach", 0, "9284", "Bob Baker", None, None, None, "Credit Union", "021000021", "Savings"),
    ], key=repr)
    vault = vault_of(cluster)
    numbers = {"1111": "4111111111111111", "4444": "5555555555554444", "0005": "378282246310005", "5601": "48213795601",
               "9284": "7730019284"}
    for row in methods:
        secret, last4 = row[-1], row[3]
        if row[1] in ("cash", "check"):
            assert secret is None
            continue
        assert secret.startswith("vault:") and numbers[last4] not in secret
        assert vault.decrypt(secret) == numbers[last4], "the ciphertext holds the number, separators removed"

    # with UserServiceID only that one service gets the answer
    chosen = service_ids(cluster)[("ann", "Business Email", "Email")]
    one = write_xml(tmp_path / "one.xml", '<UserServiceProfileAnswer User="ann" UserService="Email" '
                                          f'Question="How did you hear about us" Answer="Flyer" UserServiceID="{chosen}"/>')
    code, doc = cluster.run_json("run", one)
    assert code == 0 and counts(doc) == {"UserServiceProfileAnswer": (1, 1, 0, 0, 0)}, doc
    assert rows(cluster, answers_sql) == sorted([*answers, ("ann", "How did you hear about us", "Business Email", "Email",
                                                            "Flyer")], key=repr)


# -- 2. every rule dead-letters its failing case; children of a dead parent are blocked ----------------


def test_every_rule_dead_letters_with_a_clear_message(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_worker()
    code, doc = cluster.run_json("run", REFERENCE, FAULTS)
    assert doc["state"] == "completed" and code == 3, doc
    assert counts(doc) == {**REFERENCE_COUNTS, **FAULT_COUNTS}
    assert doc["balanced"] is True

    letters = letters_by_line(cluster, FAULTS)
    assert set(letters) == set(FAULT_LETTERS)
    for line, (entity, outcome, stage, error_class, field, value, message, hint) in FAULT_LETTERS.items():
        got = letters[line]
        assert got[1:7] == (entity, outcome, stage, error_class, field, value), (line, got)
        assert message in got[7], (line, got[7])
        assert hint in (got[8] or ""), (line, got[8])
    # the hint lists the account's packages
    assert {"Home Internet", "Business Email"} <= set(letters[16][8].removeprefix("its packages: ").split(", "))
    for line, parent in BLOCKED_BY.items():
        assert letters[line][9] == letters[parent][0], f"line {line} is blocked by the letter of line {parent}"
        assert f"dead letter #{letters[parent][0]}" in letters[line][7]

    # a UserServiceID of another account's service is refused
    ids = service_ids(cluster)
    other = write_xml(tmp_path / "other.xml", '<UserServiceProfileAnswer User="cy" UserService="Email" Question="Modem model" '
                                              f'Answer="none" UserServiceID="{ids[("dee", "Business Email", "Email")]}"/>')
    code, doc = cluster.run_json("run", other)
    assert code == 3 and counts(doc) == {"UserServiceProfileAnswer": (1, 0, 0, 1, 0)}, doc
    [letter] = letters_by_line(cluster, other).values()
    assert letter[1:7] == ("UserServiceProfileAnswer", "dead", "load", "RuleViolation", "UserServiceID",
                           str(ids[("dee", "Business Email", "Email")]))
    assert "is not one of account 'cy''s 'Email' services" in letter[7] and "leave UserServiceID out" in letter[8]
    assert cluster.query("SELECT count(*) FROM profile_answers") == [(0,)]


def test_children_of_a_package_or_service_dead_for_an_unknown_reference_are_blocked(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_worker()
    data = write_xml(
        tmp_path / "orphans.xml",
        '<User Name="cy" Owner="Acme"/>',
        '<UserPackage User="cy" Name="Satellite"/>',  # line 4: no such Package
        '<UserService User="cy" UserPackage="Satellite" Name="DSL"/>',
        '<UserPackage User="cy" Name="Home Internet"/>',
        '<UserService User="cy" UserPackage="Home Internet" Name="Fax"/>',  # line 7: no such Service
        '<UserServiceAttribute User="cy" UserPackage="Home Internet" UserService="Fax" Name="Speed" Value="1"/>',
    )
    code, doc = cluster.run_json("run", REFERENCE, data)
    assert doc["state"] == "completed" and code == 3, doc
    letters = letters_by_line(cluster, data)
    assert letters[4][1:5] == ("UserPackage", "dead", "load", "UnknownReference")
    assert letters[7][1:5] == ("UserService", "dead", "load", "UnknownReference")
    assert letters[5][2:5] == ("blocked", "load", "Blocked") and letters[5][9] == letters[4][0], letters[5]
    assert letters[8][2:5] == ("blocked", "load", "Blocked") and letters[8][9] == letters[7][0], letters[8]


# -- 3. attachments: the size limit, both stores, stored once ------------------------------------------


def test_attachments_limit_round_trip_and_store_once(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_worker()
    files = tmp_path / "files"
    files.mkdir()
    large, small, other = os.urandom(3 * MB // 2), os.urandom(9 * MB // 10), os.urandom(9 * MB // 10)
    inline = base64.b64encode(os.urandom(6 * MB // 5)).decode()
    for name, data in (("large.bin", large), ("small.bin", small), ("small-again.bin", small), ("other.bin", other),
                       ("other-again.bin", other)):
        (files / name).write_bytes(data)

    # the database store (the default)
    in_db = write_xml(
        tmp_path / "in-db.xml",
        '<User Name="zed" Owner="Acme"/>',
        '<Ticket TicketID="T-3001" User="zed" Subject="Big files" Date="3/1/2007" Status="Open"/>',
        '<TicketAttachment TicketID="T-3001" FileName="large.bin" Path="files/large.bin"/>',  # line 5
        f'<TicketAttachment TicketID="T-3001" FileName="inline.bin" Content="{inline}"/>',  # line 6
        '<TicketAttachment TicketID="T-3001" FileName="small.bin" Path="files/small.bin"/>',
        '<TicketAttachment TicketID="T-3001" FileName="small-again.bin" Path="files/small-again.bin"/>',
    )
    limited = with_env(cluster, CUTOVER_ATTACHMENT_MAX_MB="1")
    code, doc = limited.run_json("run", REFERENCE, in_db)
    assert doc["state"] == "completed" and code == 3, doc
    assert counts(doc)["TicketAttachment"] == (4, 2, 0, 2, 0)
    letters = letters_by_line(cluster, in_db)
    assert set(letters) == {5, 6}
    assert letters[5][1:7] == ("TicketAttachment", "dead", "read", "InvalidValue", "Path", "files/large.bin")
    assert "'large.bin' is 1.5 MB, above the 1 MB limit" in letters[5][7]
    assert letters[6][1:7] == ("TicketAttachment", "dead", "read", "InvalidValue", "Content",
                               f"(base64, {len(inline)} characters)")
    assert "'inline.bin' is above the 1 MB limit" in letters[6][7]
    stored = cluster.dump("dead_letters") + cluster.dump("staged_records")
    for fragment in (inline, inline[:64], inline[len(inline) // 2:len(inline) // 2 + 64]):
        assert fragment not in stored, "the base64 content is never kept in a dead letter or a payload"

    sha = hashlib.sha256(small).hexdigest()
    assert rows(cluster, "SELECT file_name, sha256, size, store FROM ticket_attachments") == [
        ("small-again.bin", sha, len(small), "database"), ("small.bin", sha, len(small), "database")]
    [(data,)] = cluster.query("SELECT data FROM attachment_blobs WHERE sha256 = :s", s=sha)
    assert bytes(data) == small, "the bytes round-trip exactly"
    assert [r[0] for r in cluster.query("SELECT sha256 FROM attachment_blobs")] == [sha], \
        "stored once; nothing above the limit is stored"

    # the files store: CUTOVER_HOME/attachments/<sha[:2]>/<sha>
    in_files = write_xml(
        tmp_path / "in-files.xml",
        '<Ticket TicketID="T-3002" User="zed" Subject="More files" Date="3/2/2007" Status="Closed"/>',
        '<TicketAttachment TicketID="T-3002" FileName="large.bin" Path="files/large.bin"/>',  # line 4
        '<TicketAttachment TicketID="T-3002" FileName="other.bin" Path="files/other.bin"/>',
        '<TicketAttachment TicketID="T-3002" FileName="other-again.bin" Path="files/other-again.bin"/>',
    )
    code, doc = with_env(limited, CUTOVER_ATTACHMENT_STORE="files").run_json("run", in_files)
    assert doc["state"] == "completed" and code == 3, doc
    assert counts(doc) == {"Ticket": (1, 1, 0, 0, 0), "TicketAttachment": (3, 2, 0, 1, 0)}
    assert [(line, row[5], row[6]) for line, row in letters_by_line(cluster, in_files).items()] == [
        (4, "Path", "files/large.bin")]
    other_sha = hashlib.sha256(other).hexdigest()
    assert rows(cluster, "SELECT x.file_name, x.sha256, x.size, x.store FROM ticket_attachments x JOIN tickets t "
                         "ON t.id = x.ticket_id WHERE t.source_id = 'T-3002'") == [
        ("other-again.bin", other_sha, len(other), "files"), ("other.bin", other_sha, len(other), "files")]
    root = cluster.home / "attachments"
    assert (root / other_sha[:2] / other_sha).read_bytes() == other
    assert [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()] == [f"{other_sha[:2]}/{other_sha}"], \
        "stored once; nothing above the limit and no partial file left behind"
    assert cluster.query("SELECT count(*) FROM attachment_blobs WHERE sha256 = :s", s=other_sha) == [(0,)]


# -- 4. card and bank account numbers never in clear ---------------------------------------------------


def test_card_and_bank_numbers_never_in_clear(cluster: Cluster, tmp_path: Path) -> None:
    planted = planted_numbers(RECORDS, FAULTS)
    assert len(planted) == 9 and "4111 1111 1111 1112" in planted  # the Luhn failure
    cluster.start_worker()
    with RedisRecorder(cluster.env["CUTOVER_BROKER_URL"]) as recorder:
        done = cluster.cli("run", REFERENCE, RECORDS, FAULTS)
        assert done.returncode == 3, done.stdout + done.stderr
        found = re.search(r"run (r[\w-]+): staged", done.stdout)
        assert found, done.stdout
        run_id = found.group(1)
        listed = cluster.cli("dlq", "list", "--json")
        letter_ids = [letter["id"] for letter in json.loads(listed.stdout)]
        assert len(letter_ids) == len(FAULT_LETTERS)
        shown = [cluster.cli("dlq", "show", str(i)) for i in letter_ids]
        status = cluster.cli("status", run_id)
        reported = cluster.cli("report", run_id, "--out", str(tmp_path / "report"))
        assert reported.returncode == 0, reported.stderr
    redis_text = recorder.decoded_text()
    assert '"ids": [' in redis_text, "the recording saw the task messages"
    assert "vault:v1:" not in redis_text, "messages name their records: not even ciphertext crosses the broker"
    assert any("CardNumber = '«secret»'" in d.stdout for d in shown), "dlq show lists the record, its number masked"

    payloads = [p if isinstance(p, dict) else json.loads(p) for (p,) in cluster.query(
        "SELECT payload FROM staged_records WHERE entity IN ('UserPaymentMethodCreditCard', 'UserPaymentMethodACH')")]
    assert len(payloads) == len(planted)
    for payload in payloads:
        number = payload.get("CardNumber") or payload.get("AccountNumber")
        assert number and number.startswith("vault:v1:"), payload

    logs = {str(p): p.read_text(errors="replace") for p in cluster.home.rglob("*.log")}
    assert logs, "the worker wrote a log"
    haystacks = {
        "redis commands": redis_text,
        "redis keys": with_base64_decoded(redis_contents(cluster.env["CUTOVER_BROKER_URL"])),
        **{f"log {name}": text for name, text in logs.items()},
        "cli": "".join(d.stdout + d.stderr for d in (done, listed, *shown, status, reported)),
        "dead letters": cluster.dump("dead_letters"),
        "staged records": cluster.dump("staged_records"),
        "payment methods": cluster.dump("account_payment_methods"),
        **{f"report {p.name}": p.read_text(encoding="utf-8") for p in (tmp_path / "report").iterdir()},
    }
    assert {name for name in haystacks if name.startswith("report")} == {f"report {run_id}.jsonl", f"report {run_id}.csv"}
    for where, text in haystacks.items():
        for number in planted:
            for spelled in spellings(number):
                assert spelled not in text, f"{number!r} in clear in {where} (as {spelled!r})"


# -- 5. a re-run adds nothing --------------------------------------------------------------------------


def test_rerun_adds_nothing(cluster: Cluster) -> None:
    cluster.start_worker()
    code, first = cluster.run_json("run", REFERENCE, RECORDS, FAULTS)
    assert first["state"] == "completed" and code == 3, first
    before = table_counts(cluster)
    ledger = cluster.query("SELECT count(*) FROM ledger")[0][0]
    code, again = cluster.run_json("run", REFERENCE, RECORDS, FAULTS)
    assert again["state"] == "completed" and code == 3, again
    assert again["totals"]["committed"] == 0
    expected = {e: (read, 0, committed + skipped, dead, blocked)
                for e, (read, committed, skipped, dead, blocked) in counts(first).items()}
    assert counts(again) == expected, "everything skipped, or dead or blocked again"
    assert again["balanced"] is True
    assert table_counts(cluster) == before
    assert cluster.query("SELECT count(*) FROM ledger")[0][0] == ledger


# -- 6. a dead-lettered card replays once its account exists -------------------------------------------


def test_dead_lettered_card_replays_and_decrypts(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_worker()
    card = write_xml(tmp_path / "card.xml", '<UserPaymentMethodCreditCard User="zoe" CardType="Visa" CardNumber="4012 8888 '
                                            '8888 1881" ExpiryMonth="3" ExpiryYear="2031" NameOnCard="Zoe Zane"/>')
    code, doc = cluster.run_json("run", REFERENCE, card)
    assert code == 3 and counts(doc)["UserPaymentMethodCreditCard"] == (1, 0, 0, 1, 0), doc
    [letter] = letters_by_line(cluster, card).values()
    assert letter[1:7] == ("UserPaymentMethodCreditCard", "dead", "load", "UnknownReference", "User", "zoe")

    user = write_xml(tmp_path / "user.xml", '<User Name="zoe" Owner="Acme"/>')
    code, doc = cluster.run_json("run", user)
    assert code == 0 and counts(doc) == {"User": (1, 1, 0, 0, 0)}, doc

    code, replay = cluster.run_json("dlq", "replay", "--entity", "UserPaymentMethodCreditCard")
    assert replay["state"] == "completed" and code == 0, replay
    assert counts(replay) == {"UserPaymentMethodCreditCard": (1, 1, 0, 0, 0)}
    assert letters_by_line(cluster, card) == {}, "the letter is closed"
    [(secret, last4, holder, month, year)] = cluster.query(
        "SELECT p.secret, p.last4, p.holder, p.expiry_month, p.expiry_year FROM account_payment_methods p "
        "JOIN accounts a ON a.id = p.account_id WHERE a.name = 'zoe' AND p.kind = 'card'")
    assert (last4, holder, month, year) == ("1881", "Zoe Zane", 3, 2031)
    assert secret.startswith("vault:") and "4012888888881881" not in secret
    assert vault_of(cluster).decrypt(secret) == "4012888888881881"


def test_a_misspelt_secret_attribute_is_still_kept_secret(cluster: Cluster, tmp_path: Path) -> None:
    """`CardNumbr` is refused as an unknown attribute; its value is a card number all the same."""
    cluster.start_worker()
    data = write_xml(tmp_path / "typo.xml",
                     '<UserPaymentMethodCreditCard User="ann" CardNumbr="5555 5555 5555 4444" ExpiryMonth="1" '
                     'ExpiryYear="2030" NameOnCard="Ann"/>')
    done = cluster.cli("run", data)
    assert done.returncode == 3, done.stdout + done.stderr
    [(error_class, field, value)] = cluster.query("SELECT error_class, field, value FROM dead_letters")
    assert (error_class, field, value) == ("UnknownName", "CardNumbr", "«secret»")
    shown = cluster.cli("dlq", "show", str(cluster.query("SELECT id FROM dead_letters")[0][0]))
    haystack = cluster.dump("staged_records") + shown.stdout + done.stdout
    for spelled in spellings("5555 5555 5555 4444"):
        assert spelled not in haystack, f"{spelled} in clear"
