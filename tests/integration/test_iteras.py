"""The iteras JSON operations end to end on real Redis, real workers, SQLite and PostgreSQL: the
example with its planted faults and an idempotent re-run, customer ids kept or assigned (and the
PostgreSQL sequence moved past them), the period rules and adjusted invoicing worked by hand,
overrides and payments, JSON array and JSON Lines loading the same database, the seed's commented
JSON refused unless --lenient-json, and --manual-invoice-verification with its go-live reminders."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CASES, POSTGRES_ADMIN_URL, Cluster

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "iteras"
EXAMPLE_REFERENCE = str(EXAMPLES / "reference.xml")
EXAMPLE_OPERATIONS = str(EXAMPLES / "operations.json")
SEED_STYLE = str(EXAMPLES / "seed-style.json")
REFERENCE = str(CASES / "iteras" / "reference.xml")  # DKK, EUR; AVIS-12M, AVIS-3M, MAG-10, HALF-8
D = Decimal
COLUMNS = ("read", "committed", "skipped", "dead", "blocked")
SUBSCRIPTION_TABLES = ("customers", "subscriptions", "subscription_periods", "customer_payments", "customer_overrides")

# entity: (read, committed, skipped, dead, blocked) for examples/iteras/reference.xml + operations.json
EXAMPLE_COUNTS = {
    "Currency": (3, 3, 0, 0, 0), "Campaign": (6, 6, 0, 0, 0),
    "Customer": (43, 42, 0, 1, 0),  # 10027's e-mail
    "createcustomr": (1, 0, 0, 1, 0),  # the misspelled operation, counted under the name it was written with
    "CustomerPayment": (38, 35, 0, 2, 1),  # NOK, 105.5 | 10027's payment waits for its customer
    "Subscription": (66, 59, 0, 6, 1),  # faults a–e and o | 10027's subscription
    "CustomerOverride": (23, 18, 0, 5, 0),  # faults h–l
}
# line of operations.json: (entity, outcome, stage, error_class, field, value) — the README's planted faults
EXAMPLE_LETTERS = {
    53: ("Subscription", "dead", "load", "RuleViolation", "periods[1].begin", "2025-12-15"),  # (a) overlap
    99: ("Subscription", "dead", "load", "RuleViolation", "periods[0].end", "2025-09-01"),  # (b) begin > end
    120: ("Subscription", "dead", "load", "RuleViolation", "end", "2026-12-31"),  # (c) end on MAG-10
    124: ("Subscription", "dead", "load", "RuleViolation", "remaining_assignments", "6"),  # (d) on AVIS-3M
    131: ("Subscription", "dead", "load", "UnknownReference", "campaign", "AVIS-12N"),  # (e)
    83: ("CustomerPayment", "dead", "load", "UnknownReference", "currency", "NOK"),  # (f)
    97: ("CustomerPayment", "dead", "read", "InvalidValue", "amount", "105.5"),  # (g)
    158: ("CustomerOverride", "dead", "read", "MissingField", "subscription_id", ""),  # (h)
    159: ("CustomerOverride", "dead", "load", "RuleViolation", "subscription_id", "S-20445"),  # (i)
    161: ("CustomerOverride", "dead", "read", "RuleViolation", "end", "2027-02-01"),  # (j)
    162: ("CustomerOverride", "dead", "read", "InvalidValue", "weekdays[0]", "0"),  # (k)
    163: ("CustomerOverride", "dead", "read", "UnknownName", "subscribtion_id", "subscribtion_id"),  # (l)
    115: ("createcustomr", "dead", "read", "UnknownName", "operation", "createcustomr"),  # (m)
    73: ("Customer", "dead", "read", "InvalidValue", "email", "jens.hansen@@mail.dk"),  # (n)
    72: ("Subscription", "dead", "load", "UnknownReference", "id", "99999"),  # (o)
    74: ("Subscription", "blocked", "load", "Blocked", None, None),  # (p)
    75: ("CustomerPayment", "blocked", "load", "Blocked", None, None),  # (p)
}


# -- reading the target with plain SQL, the same on both databases ------------------------------------


def counts(doc: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    return {name: tuple(row[c] for c in COLUMNS) for name, row in doc["entities"].items()}


def money(value: object) -> Decimal:
    """A Money column read with plain SQL: ten-thousandths on SQLite, NUMERIC on PostgreSQL."""
    return D(value) / 10000 if isinstance(value, int) else D(str(value))


def day(value: object) -> date | None:
    return None if value is None else date.fromisoformat(str(value)[:10])


def moment(value: object) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value))


def decoded(value: object) -> Any:
    """A JSON column: text on SQLite, already decoded on PostgreSQL."""
    return json.loads(value) if isinstance(value, str) else value


def rate(value: object) -> Decimal | None:
    return None if value is None else D(str(value))


def table_counts(cluster: Cluster) -> dict[str, int]:
    return {t: cluster.query(f"SELECT count(*) FROM {t}")[0][0] for t in (*SUBSCRIPTION_TABLES, "reference_items")}


def periods_of(cluster: Cluster, source_id: str) -> list[tuple[object, ...]]:
    """One subscription's periods, by begin: current, begin, end, remaining, invoicing, renewed,
    amount, currency, campaign code, external invoiced/credited/paid/refunded/currency/tax rate."""
    rows = cluster.query(
        "SELECT p.current, p.begin, p.end, p.remaining_assignments, p.invoicing, p.renewed, p.invoice_amount, p.currency, "
        "r.name, p.external_invoiced, p.external_credited, p.external_paid, p.external_refunded, p.external_currency, "
        "p.external_tax_rate FROM subscription_periods p JOIN subscriptions s ON s.id = p.subscription_id "
        "JOIN reference_items r ON r.id = p.campaign_id WHERE s.source_id = :s ORDER BY p.begin", s=source_id)
    return [(bool(r[0]), day(r[1]), day(r[2]), r[3], r[4], bool(r[5]), money(r[6]), r[7], r[8], *r[9:14], rate(r[14]))
            for r in rows]


def letters_by_line(cluster: Cluster, source: str) -> dict[int, tuple[Any, ...]]:
    """Dead letters of one source file by line: entity, outcome, stage, error_class, field, value, message, hint."""
    rows = cluster.query("SELECT line, entity, outcome, stage, error_class, field, value, message, hint FROM dead_letters "
                         "WHERE source_file = :f", f=source)
    by_line = {r[0]: tuple(r[1:]) for r in rows}
    assert len(by_line) == len(rows), "one dead letter per line"
    return by_line


def snapshot(cluster: Cluster) -> dict[str, list[tuple[Any, ...]]]:
    """The subscription tables without autoincrement ids (foreign keys shown as what they point at),
    sorted, with every value in one Python type whatever the database returned."""
    customers = cluster.query("SELECT id, created, name, company, email, phone, address, id_assigned FROM customers")
    subscriptions = cluster.query(
        "SELECT s.source_id, s.customer_id, r.name, s.manual_invoice_verification FROM subscriptions s "
        "JOIN reference_items r ON r.id = s.campaign_id")
    periods = cluster.query(
        "SELECT s.source_id, r.name, p.current, p.begin, p.end, p.remaining_assignments, p.invoicing, p.renewed, "
        "p.invoice_amount, p.currency, p.external_invoiced, p.external_credited, p.external_paid, p.external_refunded, "
        "p.external_currency, p.external_tax_rate FROM subscription_periods p "
        "JOIN subscriptions s ON s.id = p.subscription_id JOIN reference_items r ON r.id = p.campaign_id")
    payments = cluster.query("SELECT source_key, customer_id, amount_minor, currency, method FROM customer_payments")
    overrides = cluster.query(
        "SELECT o.source_key, o.customer_id, s.source_id, o.override_type, o.begin, o.end, o.address, o.weekdays "
        "FROM customer_overrides o LEFT JOIN subscriptions s ON s.id = o.subscription_id")
    out = {
        "customers": [(r[0], moment(r[1]), *r[2:6], json.dumps(decoded(r[6]), sort_keys=True), bool(r[7])) for r in customers],
        "subscriptions": [(r[0], r[1], r[2], bool(r[3])) for r in subscriptions],
        "subscription_periods": [(r[0], r[1], bool(r[2]), day(r[3]), day(r[4]), r[5], r[6], bool(r[7]), money(r[8]), *r[9:15],
                                  rate(r[15])) for r in periods],
        "customer_payments": [tuple(r) for r in payments],
        "customer_overrides": [(*r[:4], day(r[4]), day(r[5]), json.dumps(decoded(r[6]), sort_keys=True),
                                json.dumps(decoded(r[7]))) for r in overrides],
    }
    return {table: sorted(rows, key=repr) for table, rows in out.items()}


# -- 1. the example ------------------------------------------------------------------------------------


def test_example_loads_with_its_planted_faults_and_reruns_idempotently(cluster: Cluster) -> None:
    cluster.start_worker()
    code, doc = cluster.run_json("run", EXAMPLE_REFERENCE, EXAMPLE_OPERATIONS)
    assert doc["state"] == "completed", doc
    assert code == 3, "planted faults: dead and blocked records give exit 3"
    assert counts(doc) == EXAMPLE_COUNTS
    assert doc["balanced"] is True
    assert doc["totals"] == {"read": 180, "committed": 163, "skipped": 0, "dead": 15, "blocked": 2, "pending": 0}

    letters = letters_by_line(cluster, EXAMPLE_OPERATIONS)
    assert {line: row[:6] for line, row in letters.items()} == EXAMPLE_LETTERS
    message, hint = {line: row[6] for line, row in letters.items()}, {line: row[7] for line, row in letters.items()}
    assert "periods[1] (2025-12-15…2026-03-14, AVIS-3M) overlaps periods[0] (2025-10-01…2025-12-29, AVIS-3M)" in message[53]
    assert "periods[0] ends (2025-09-01) before it begins (2026-02-28)" in message[99]
    assert "the current period has an end" in message[120] and "'MAG-10' counts assignments" in message[120]
    assert "remaining_assignments" in hint[120]
    assert "the current period has remaining_assignments (6)" in message[124] and "time-based" in message[124]
    assert hint[131] == "did you mean 'AVIS-12M'?"
    assert "10550" in hint[97]
    assert hint[115] == "did you mean 'createcustomer'?"
    assert hint[163] == "did you mean 'subscription_id'?"
    assert "belongs to customer 10018, not to customer 10016" in message[159]
    assert "customer 99999 not found" in message[72]
    assert all("Customer '10027'" in message[line] for line in (74, 75))

    assert table_counts(cluster) == {"customers": 42, "subscriptions": 59, "subscription_periods": 74,
                                     "customer_payments": 35, "customer_overrides": 18, "reference_items": 9}
    # the four customers without an id get the next ids above 10060, in file order
    assigned = cluster.query("SELECT id, name, created FROM customers WHERE id_assigned = :t ORDER BY id", t=True)
    assert [(r[0], r[1]) for r in assigned] == [(10061, "Emma Gregersen"), (10062, "Oliver Kofoed"),
                                                (10063, "Freja Hedegaard"), (10064, "Lukas Brandt")]
    assert moment(assigned[1][2]) == datetime(2026, 10, 14, 12, 5), "2026-10-14T14:05:00+02:00 in UTC"
    # ids as strings and as numbers name the same customer: the seed's pair of "10012"
    assert sorted(cluster.query("SELECT amount_minor, method FROM customer_payments WHERE customer_id = 10012")) == [
        (-10500, "external"), (10500, "internal")]
    # without --manual-invoice-verification: nothing marked, and the reminder says so
    assert cluster.query("SELECT count(*) FROM subscriptions WHERE manual_invoice_verification = :t", t=True) == [(0,)]
    assert "without --manual-invoice-verification" in doc["reminders"][0]
    assert any("dunning" in r for r in doc["reminders"])

    before = table_counts(cluster)
    target_before = snapshot(cluster)
    code, again = cluster.run_json("run", EXAMPLE_REFERENCE, EXAMPLE_OPERATIONS)
    assert again["state"] == "completed" and code == 3
    assert again["totals"] == {"read": 180, "committed": 0, "skipped": 163, "dead": 15, "blocked": 2, "pending": 0}
    assert again["balanced"] is True
    assert table_counts(cluster) == before
    assert snapshot(cluster) == target_before, "a second run changes nothing, assigned ids included"


# -- 2. customer ids -----------------------------------------------------------------------------------


def test_customer_ids_are_kept_or_assigned_above_the_highest_and_the_sequence_follows(cluster: Cluster) -> None:
    import sqlalchemy as sa
    from sqlalchemy.orm import Session

    from shared.schema.subscriptions import Customer

    cluster.start_worker()
    cluster.execute("INSERT INTO customers (id, name, id_assigned) VALUES (900, 'already there', :f)", f=False)
    ids = str(CASES / "iteras" / "customer-ids.json")
    code, doc = cluster.run_json("run", REFERENCE, ids)
    assert code == 0 and doc["state"] == "completed", doc
    assert counts(doc)["Customer"] == (5, 5, 0, 0, 0) and counts(doc)["CustomerPayment"] == (2, 2, 0, 0, 0)

    rows = cluster.query("SELECT id, name, company, created, id_assigned FROM customers ORDER BY id")
    assert [(r[0], r[1] or r[2], moment(r[3]), bool(r[4])) for r in rows] == [
        (500, "Number Given", datetime(2015, 3, 1), False),
        (700, "String Given", datetime(2016, 1, 18, 8, 0), False),  # "…T08:00:00Z"
        (900, "already there", None, False),
        # the id-less, in file order, above max(900 in the database, 700 in the file)
        (901, "Ann Without", datetime(2019, 12, 24, 8, 15), True),  # 10:15+02:00 → 08:15 UTC
        (902, "Bo Without", datetime(2020, 7, 1, 4, 30), True),  # 23:30−05:00 → 04:30 the next day, UTC
        (903, "Cy Without ApS", datetime(2021, 2, 1), True),  # a date: midnight, no conversion
    ]
    # "0700" and 500 name the customers "700" and 500
    assert sorted(cluster.query("SELECT customer_id, amount_minor FROM customer_payments")) == [(500, 200), (700, 100)]

    # the billing system's own insert after the import: the next id, no collision (the PostgreSQL sequence)
    engine = sa.create_engine(cluster.database_url)
    try:
        with Session(engine) as session:
            new = Customer(name="signed up after go-live")
            session.add(new)
            session.commit()  # an IntegrityError here is the sequence left behind the imported ids
            assert new.id > 903
            new_id = new.id
    finally:
        engine.dispose()

    code, again = cluster.run_json("run", REFERENCE, ids)
    assert code == 0 and again["totals"]["committed"] == 0 and again["totals"]["skipped"] == again["totals"]["read"]
    after = cluster.query("SELECT id, id_assigned FROM customers ORDER BY id")
    assert [(r[0], bool(r[1])) for r in after] == [(500, False), (700, False), (900, False), (901, True), (902, True),
                                                   (903, True), (new_id, False)], "a re-run assigns no new ids"


# -- 3, 4, 9. periods, adjusted invoicing, manual invoice verification -------------------------------------

SUBSCRIPTIONS = str(CASES / "iteras" / "subscriptions.json")
# line: (field, value, words the message must hold) — each names the offending period
PERIOD_FAULTS = {
    12: ("periods[1].begin", "2025-03-31", "periods[1] (2025-03-31…2025-06-28, AVIS-3M) overlaps "
                                           "periods[0] (2025-01-01…2025-03-31, AVIS-3M)"),
    # periods[0] has no end: AVIS-3M is 90 days, so it runs 2025-12-01..2026-02-28 and reaches into the current one
    13: ("period_begin", "2026-01-01", "the current period (2026-01-01…2026-12-31, AVIS-12M) overlaps "
                                       "periods[0] (2025-12-01…2026-02-28, AVIS-3M)"),
    14: ("periods[0].end", "2025-05-31", "periods[0] ends (2025-05-31) before it begins (2025-06-01)"),
    15: ("periods[0].end", "2025-06-30", "periods[0] has an end (2025-06-30) but campaign 'MAG-10' counts assignments"),
    16: ("periods[0].remaining_assignments", "3",
         "periods[0] has remaining_assignments (3) but campaign 'AVIS-3M' is time-based"),
    17: ("campaign", "AVIS-12N", "Campaign 'AVIS-12N' not found"),
    18: ("periods[0].campaign", "AVIS-3N", "Campaign 'AVIS-3N' not found"),
    19: ("periods[0].external_invoicing.currency", "NOK", "Currency 'NOK' not found"),
    20: ("end", "2026-05-01", "the current period ends (2026-05-01) before it begins (2026-06-01)"),
}


def test_periods_follow_the_rules_and_adjusted_invoicing_is_worked_out(cluster: Cluster) -> None:
    cluster.start_worker()
    code, doc = cluster.run_json("run", "--manual-invoice-verification", REFERENCE, SUBSCRIPTIONS)
    assert doc["state"] == "completed" and code == 3, doc
    assert counts(doc)["Subscription"] == (17, 8, 0, 9, 0)

    letters = letters_by_line(cluster, SUBSCRIPTIONS)
    assert set(letters) == set(PERIOD_FAULTS)
    for line, (field, value, words) in PERIOD_FAULTS.items():
        entity, outcome, stage, error_class, got_field, got_value, message, hint = letters[line]
        assert (entity, outcome, stage, got_field, got_value) == ("Subscription", "dead", "load", field, value), line
        assert error_class == ("UnknownReference" if "not found" in words else "RuleViolation"), line
        assert words in message, (line, message)
    assert letters[17][7] == "did you mean 'AVIS-12M'?" and letters[18][7] == "did you mean 'AVIS-3M'?"

    n = None
    # current, begin, end, remaining, invoicing, renewed, amount, currency, campaign, ext. invoiced/credited/paid/refunded/
    # currency/tax rate — amounts worked by hand
    assert periods_of(cluster, "S-GOOD") == [
        # MAG-10 historical: no end, remaining defaults to the campaign's 10, full → 495.00
        (False, date(2025, 3, 1), n, 10, "full", False, D("495.00"), "DKK", "MAG-10", n, n, n, n, n, n),
        # AVIS-3M without end: 2025-04-01 + 90 − 1 = 2025-06-29; adjusted over the whole 90 days → 690.00
        (False, date(2025, 4, 1), date(2025, 6, 29), n, "adjusted_begin", False, D("690.00"), "DKK", "AVIS-3M",
         n, n, n, n, n, n),
        (False, date(2025, 9, 1), date(2025, 11, 29), n, "none", False, D("0.00"), "DKK", "AVIS-3M", n, n, n, n, n, n),
        # 2025-11-30..2025-12-31 = 32 days: 690.00 × 32 / 90 = 245.333… → 245.33; what the old system did, in minor units
        (False, date(2025, 11, 30), date(2025, 12, 31), n, "adjusted_end", True, D("245.33"), "DKK", "AVIS-3M",
         69000, -45233, 69000, 0, "EUR", D("0.25")),
        # the current period: 2026-01-01 + 365 − 1 = 2026-12-31, full → 2400.00
        (True, date(2026, 1, 1), date(2026, 12, 31), n, "full", True, D("2400.00"), "DKK", "AVIS-12M", n, n, n, n, n, n),
    ]
    run_day = date.fromisoformat(doc["created_at"][:10])
    current = {sid: periods_of(cluster, sid) for sid in ("S-A1", "S-A2", "S-A3", "S-A4", "S-A5", "S-A6", "S-A7")}
    assert all(len(rows) == 1 and rows[0][0] is True for rows in current.values()), current
    got = {sid: rows[0][1:8] for sid, rows in current.items()}
    assert got == {
        # 2025-01-01..2025-04-30: 31 + 28 + 31 + 30 = 120 days; 2400.00 × 120 / 365 = 789.0410… → 789.04
        "S-A1": (date(2025, 1, 1), date(2025, 4, 30), n, "adjusted_end", False, D("789.04"), "DKK"),
        # 2026-03-01..2026-03-30: 30 days; 690.00 × 30 / 90 = 230.00
        "S-A2": (date(2026, 3, 1), date(2026, 3, 30), n, "adjusted_begin", False, D("230.00"), "DKK"),
        # 4 of 10 issues left: 495.00 × 4 / 10 = 198.00
        "S-A3": (date(2026, 9, 15), n, 4, "adjusted_begin", False, D("198.00"), "DKK"),
        # invoicing none → 0.00; no end: 2026-01-01 + 364 days = 2026-12-31
        "S-A4": (date(2026, 1, 1), date(2026, 12, 31), n, "none", False, D("0.00"), "DKK"),
        # no period_begin: the day the run was staged; no remaining_assignments: all 10; invoicing defaults to full
        "S-A5": (run_day, n, 10, "full", False, D("495.00"), "DKK"),
        # one day of an 8-day campaign at 1.00: 0.125, rounded half up → 0.13 (half-even would give 0.12)
        "S-A6": (date(2026, 2, 1), date(2026, 2, 1), n, "adjusted_end", False, D("0.13"), "EUR"),
        # 2028 is a leap year: 2028-01-01 + 365 − 1 = 2028-12-30
        "S-A7": (date(2028, 1, 1), date(2028, 12, 30), n, "full", False, D("2400.00"), "DKK"),
    }
    assert cluster.query("SELECT count(*) FROM subscription_periods WHERE current = :t", t=True) == [(8,)]
    assert cluster.query("SELECT count(*) FROM subscription_periods") == [(12,)]

    # --manual-invoice-verification marks every subscription, and the go-live reminders say so
    flags = cluster.query("SELECT manual_invoice_verification FROM subscriptions")
    assert len(flags) == 8 and all(bool(f[0]) for f in flags)
    assert doc["reminders"][0].startswith("8 subscription(s) are marked for manual invoice verification")
    assert any("dunning" in r for r in doc["reminders"])


# -- 5, 6. overrides and payments ----------------------------------------------------------------------


def test_overrides_and_payments(cluster: Cluster) -> None:
    cluster.start_worker()
    source = str(CASES / "iteras" / "overrides-payments.json")
    code, doc = cluster.run_json("run", REFERENCE, source)
    assert doc["state"] == "completed" and code == 3, doc
    got = counts(doc)
    assert (got["Customer"], got["Subscription"]) == ((2, 2, 0, 0, 0), (3, 2, 0, 1, 0))
    assert got["CustomerOverride"] == (9, 3, 0, 5, 1)
    assert got["CustomerPayment"] == (5, 3, 0, 2, 0)

    letters = letters_by_line(cluster, source)
    assert {line: row[:6] for line, row in letters.items()} == {
        6: ("Subscription", "dead", "load", "UnknownReference", "campaign", "AVIS-12N"),
        10: ("CustomerOverride", "dead", "read", "MissingField", "subscription_id", ""),  # a vacation needs its subscription
        11: ("CustomerOverride", "dead", "load", "RuleViolation", "subscription_id", "S-2"),  # customer 2's subscription
        12: ("CustomerOverride", "dead", "read", "RuleViolation", "end", "2027-03-01"),  # begin > end
        13: ("CustomerOverride", "dead", "read", "InvalidValue", "weekdays[1]", "8"),
        14: ("CustomerOverride", "dead", "load", "UnknownReference", "subscription_id", "S-9"),
        15: ("CustomerOverride", "blocked", "load", "Blocked", None, None),  # waits for S-BAD
        19: ("CustomerPayment", "dead", "load", "UnknownReference", "currency", "NOK"),
        20: ("CustomerPayment", "dead", "load", "UnknownReference", "id", "3"),
    }
    assert "belongs to customer 2, not to customer 1" in letters[11][6]
    assert "S-1" in letters[14][7], "the hint names the customer's own subscription"
    assert "S-BAD" in letters[15][6]

    rows = cluster.query("SELECT o.customer_id, s.source_id, o.override_type, o.begin, o.end, o.address, o.weekdays "
                         "FROM customer_overrides o LEFT JOIN subscriptions s ON s.id = o.subscription_id ORDER BY o.begin")
    assert [(r[0], r[1], r[2], day(r[3]), day(r[4]), decoded(r[5]), decoded(r[6])) for r in rows] == [
        (1, "S-1", "change-delivery-address", date(2026, 12, 24), None,
         {"name": "Ann Override", "company": "Shøp & Co", "address": "Havnegade 12\n9000 Aalborg", "country": "DK"},
         [1, 3, 5]),  # [5, 1, 3, 5] sorted, each day once
        (2, "S-2", "pause-delivery", date(2027, 1, 1), date(2027, 1, 14), None, None),
        (2, None, "change-billing-address", date(2027, 2, 1), None,
         {"name": "Bo Override", "company": "Bo ApS", "address": "Torvet 1\n8000 Aarhus C", "country": "DK"}, None),
    ]
    [(address,)] = cluster.query("SELECT address FROM customers WHERE id = 1")
    assert decoded(address) == {"name": "Ann Override", "company": "", "address": "Vesterbro 1\n9000 Aalborg", "country": "DK"}

    # negative amounts are kept, in minor units; two identical payments are two payments
    payments = cluster.query("SELECT customer_id, amount_minor, currency, method FROM customer_payments ORDER BY amount_minor")
    assert [tuple(r) for r in payments] == [(1, -10500, "DKK", "external"), (1, 10500, "DKK", "internal"),
                                            (1, 10500, "DKK", "internal")]


# -- 7. JSON array and JSON Lines ----------------------------------------------------------------------


@contextmanager
def second_cluster(first: Cluster, home: Path) -> Iterator[Cluster]:
    """Another installation on a fresh database of the same kind, sharing the Redis of ``first``
    (whose workers must be stopped first, or they would load this one's records into theirs)."""
    import sqlalchemy as sa

    home.mkdir()
    admin = name = None
    if first.database_url.startswith("sqlite"):
        url = f"sqlite:///{home / 'target.db'}"
    else:
        name = f"cutover_t_{uuid.uuid4().hex[:10]}"
        admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = sa.engine.make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    other = Cluster(home, {**first.env, "CUTOVER_HOME": str(home), "CUTOVER_DATABASE_URL": url})
    try:
        upgraded = other.cli("db", "upgrade")
        assert upgraded.returncode == 0, upgraded.stderr
        yield other
    finally:
        other.stop()
        if admin is not None:
            from shared.db import engine_for

            engine_for(url).dispose()
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def test_json_array_and_json_lines_load_the_same_database(cluster: Cluster, tmp_path: Path) -> None:
    operations = json.loads(Path(EXAMPLE_OPERATIONS).read_text(encoding="utf-8"))
    array, lines = tmp_path / "operations.json", tmp_path / "operations.jsonl"
    array.write_text(json.dumps(operations, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")  # many lines each
    lines.write_text("".join(json.dumps(op) + "\n" for op in operations), encoding="utf-8")  # \u-escaped, one a line

    cluster.start_worker()
    code, from_array = cluster.run_json("run", EXAMPLE_REFERENCE, str(array))
    assert from_array["state"] == "completed" and counts(from_array) == EXAMPLE_COUNTS
    loaded = snapshot(cluster)
    assert len(loaded["customers"]) == 42 and len(loaded["customer_overrides"]) == 18
    # the same records, so the same idempotency keys: JSON Lines after the array commits nothing
    code, after = cluster.run_json("run", EXAMPLE_REFERENCE, str(lines))
    assert after["totals"]["committed"] == 0 and after["totals"]["skipped"] == from_array["totals"]["committed"]
    assert snapshot(cluster) == loaded
    cluster.stop()

    with second_cluster(cluster, tmp_path / "home-lines") as other:
        other.start_worker()
        code, from_lines = other.run_json("run", EXAMPLE_REFERENCE, str(lines))
        assert from_lines["state"] == "completed" and counts(from_lines) == EXAMPLE_COUNTS
        assert snapshot(other) == loaded
        # the dead letters say the same, each at its own layout's position of the same operation
        starts = [n for n, text in enumerate(array.read_text(encoding="utf-8").splitlines(), 1) if text == "  {"]
        assert len(starts) == len(operations)
        in_array = {(line, 3): index for index, line in enumerate(starts)}
        in_lines = {(index + 1, 1): index for index in range(len(operations))}
        assert explained(cluster, array, in_array) == explained(other, lines, in_lines)
        assert len(explained(other, lines, in_lines)) == 17


def explained(cluster: Cluster, source: Path, index_of: dict[tuple[int, int], int]) -> dict[int, tuple[Any, ...]]:
    """Dead letters of ``source`` by operation index (from line and column), without the letter ids
    messages refer to (which differ between databases)."""
    rows = cluster.query("SELECT line, col, entity, outcome, stage, error_class, field, value, message, hint "
                         "FROM dead_letters WHERE source_file = :f", f=str(source))
    return {index_of[(r[0], r[1])]: (*r[2:8], re.sub(r"#\d+", "#", r[8]), r[9]) for r in rows}


def test_json_positions_survive_the_streaming_window(tmp_path: Path) -> None:
    """Well past the reader's 64 KiB read-ahead, with two operations on a line: every record keeps
    its own line and column, and a syntax error near the end names its own (no cluster needed)."""
    from producer.readers.json_stream import READ_AHEAD, read_values
    from shared.errors import SourceError

    ops = [{"operation": "createcustomer", "id": i, "name": f"Kunde {i}", "address": {"address": "ø" * (i % 97)}}
           for i in range(1, 1201)]
    rows, where = ["["], []
    for k in range(0, len(ops), 2):
        first, second = json.dumps(ops[k], ensure_ascii=False), json.dumps(ops[k + 1], ensure_ascii=False)
        where += [(len(rows) + 1, 3), (len(rows) + 1, 3 + len(first) + 2)]
        rows.append(f"  {first}, {second}" + ("," if k + 2 < len(ops) else ""))
    rows.append("]")
    path = tmp_path / "big.json"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    assert path.stat().st_size > 3 * READ_AHEAD
    values = list(read_values(path))
    assert [v.value for v in values] == ops
    assert [(v.line, v.column) for v in values] == where

    rows[-2] = rows[-2].removesuffix("}}") + "},}"  # the last operation gets a trailing comma before its '}'
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(SourceError) as refused:
        list(read_values(path))
    assert refused.value.line == len(rows) - 1
    assert f"column {len(rows[-2])}: invalid JSON: a trailing comma before '}}'" in str(refused.value)


# -- 8. the seed's own JSON ----------------------------------------------------------------------------


def test_seed_style_json_is_refused_unless_lenient(cluster: Cluster) -> None:
    cluster.start_worker()
    code, refused = cluster.run_json("run", EXAMPLE_REFERENCE, SEED_STYLE)
    assert code == 4 and refused["state"] == "refused", refused
    assert "seed-style.json:4: column 38" in refused["message"], "the first // comment"
    assert "--lenient-json" in refused["message"]
    assert table_counts(cluster) == dict.fromkeys((*SUBSCRIPTION_TABLES, "reference_items"), 0), "nothing is loaded"
    assert cluster.query("SELECT count(*) FROM staged_records") == [(0,)]
    assert cluster.query("SELECT state FROM runs") == [("refused",)]

    strict = cluster.cli("validate", EXAMPLE_REFERENCE, SEED_STYLE)
    assert strict.returncode == 4 and "seed-style.json:4: column 38" in strict.stderr, strict.stdout + strict.stderr
    lenient = cluster.cli("validate", "--lenient-json", EXAMPLE_REFERENCE, SEED_STYLE)
    assert lenient.returncode == 0, lenient.stdout + lenient.stderr
    assert "19 records checked, 0 would not load" in lenient.stdout  # 9 reference records + 10 operations
    assert table_counts(cluster)["customers"] == 0, "validate writes nothing"

    code, doc = cluster.run_json("run", "--lenient-json", EXAMPLE_REFERENCE, SEED_STYLE)
    assert code == 0 and doc["state"] == "completed", doc
    assert {e: c for e, c in counts(doc).items() if e not in ("Currency", "Campaign")} == {
        "Customer": (3, 3, 0, 0, 0), "Subscription": (3, 3, 0, 0, 0), "CustomerPayment": (2, 2, 0, 0, 0),
        "CustomerOverride": (2, 2, 0, 0, 0)}
    # the seed's pair for the credited amount: two payments, the external one negative
    assert sorted(cluster.query("SELECT customer_id, amount_minor, currency, method FROM customer_payments")) == [
        (20001, -45233, "DKK", "external"), (20001, 45233, "DKK", "internal")]
    n = None
    assert periods_of(cluster, "S-30101") == [
        (False, date(2025, 12, 1), date(2026, 2, 28), n, "none", False, D("0.00"), "DKK", "AVIS-3M", n, n, n, n, n, n),
        (False, date(2026, 3, 1), date(2026, 3, 31), n, "none", True, D("0.00"), "DKK", "AVIS-3M",
         69000, -45233, 69000, 0, "DKK", D("0.25")),
        # 2026-04-01 + 365 − 1 = 2027-03-31
        (True, date(2026, 4, 1), date(2027, 3, 31), n, "none", True, D("0.00"), "DKK", "AVIS-12M", n, n, n, n, n, n),
    ]
    # 2026-10-01..2026-12-31 = 92 days: 1300.00 × 92 / 182 = 657.1428… → 657.14
    assert [p[1:7] for p in periods_of(cluster, "S-30103")] == [
        (date(2026, 10, 1), date(2026, 12, 31), n, "adjusted_end", False, D("657.14"))]
    assert [p[1:7] for p in periods_of(cluster, "30102")] == [(date(2026, 9, 1), n, 15, "none", False, D("0.00"))]
    [(created,)] = cluster.query("SELECT created FROM customers WHERE id = 20002")
    assert moment(created) == datetime(2019, 9, 30, 6, 15), "2019-09-30T08:15:00+02:00 in UTC"


# -- regressions (sqlite only: neither depends on the database) -------------------------------------------

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@SQLITE_ONLY
def test_historical_assignment_period_with_adjusted_invoicing(cluster: Cluster) -> None:
    cluster.start_worker()
    code, doc = cluster.run_json("run", REFERENCE, str(CASES / "iteras" / "historical-assignments.json"))
    assert counts(doc)["Subscription"] == (1, 1, 0, 0, 0), cluster.query("SELECT error_class, message FROM dead_letters")
    # 3 of MAG-10's 10 issues: 495.00 × 3 / 10 = 148.50
    assert periods_of(cluster, "S-MAG")[0][1:7] == (date(2025, 1, 1), None, 3, "adjusted_begin", False, D("148.50"))


@SQLITE_ONLY
def test_children_wait_for_a_customer_dead_at_read_whatever_way_its_id_is_written(cluster: Cluster) -> None:
    cluster.start_worker()
    code, doc = cluster.run_json("run", REFERENCE, str(CASES / "iteras" / "padded-id-parent.json"))
    assert counts(doc)["Customer"] == (1, 0, 0, 1, 0)
    assert counts(doc)["CustomerPayment"] == (1, 0, 0, 0, 1), cluster.query("SELECT error_class, message FROM dead_letters")
