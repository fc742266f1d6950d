"""The engageip ledger end to end on real Redis, real workers, SQLite and PostgreSQL: invoices from
file order, taxes, Bulk and ApplyTax, opening balances, disbursement, idempotent re-runs, the
ChildAccount guard, reconciliation catching a corrupted row, and the per-record report."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import CASES, Cluster

pytestmark = pytest.mark.slow

REFERENCE = str(CASES / "engageip" / "ledger-reference.xml")
ACCOUNTS = str(CASES / "engageip" / "ledger-accounts.xml")
YEAR = str(CASES / "engageip" / "ledger-year.xml")
D = Decimal

# (account, sequence): name, state, printed, opening, subtotal, tax, total, paid, outstanding — worked by hand
INVOICES = {
    ("ann", 1): ("ann-1", "closed", True, True, D("-20"), D("0"), D("-20"), D("0"), D("-20")),
    ("ann", 2): ("ann-2", "closed", False, False, D("40"), D("5.20"), D("45.20"), D("45.20"), D("0")),
    ("ann", 3): ("ann-FEB", "closed", True, False, D("40"), D("5.20"), D("45.20"), D("0"), D("45.20")),
    ("ann", 4): ("ann-4", "open", False, False, D("12"), D("0"), D("12"), D("0"), D("12")),
    ("bob", 1): ("bob-1", "closed", True, True, D("15.50"), D("0"), D("15.50"), D("0"), D("15.50")),
    # 10.00 debit (its 1.00 tax ignored: Exempt has no rates) − 3.00 credit (1.00 × Bulk 3), ApplyTax −0.15 −0.24
    ("bob", 2): ("bob-2", "closed", False, False, D("7"), D("-0.39"), D("6.61"), D("5"), D("1.61")),
    ("bob", 3): ("bob-3", "closed", False, False, D("20"), D("0"), D("20"), D("0"), D("20")),
}
# line: (amount, undisbursed, auto_disburse, invoice)
PAYMENTS = {
    13: (D("30"), D("0"), False, "ann-2"),
    14: (D("30"), D("14.80"), False, "ann-2"),  # over-payment: the rest stays undisbursed
    15: (D("5"), D("0"), False, "bob-2"),  # paid by the child account kid onto its parent's invoice
    16: (D("5"), D("5"), True, None),  # no invoice: auto-disburse, nothing disbursed
}
LEDGER_COUNTS = {  # read, committed, skipped, dead, blocked
    "Debit": (8, 6, 0, 2, 0), "Credit": (1, 1, 0, 0, 0), "OpeningBalance": (2, 2, 0, 0, 0),
    "CloseInvoice": (4, 3, 0, 1, 0), "Payment": (5, 4, 0, 1, 0),
}


def invoices(cluster: Cluster) -> dict[tuple[str, int], tuple[object, ...]]:
    rows = cluster.query(
        "SELECT a.name, i.sequence, i.name, i.state, i.printed, i.opening_balance, i.subtotal, i.tax, i.total, "
        "i.amount_paid, i.outstanding FROM invoices i JOIN accounts a ON a.id = i.account_id")
    return {(r[0], r[1]): (r[2], r[3], bool(r[4]), bool(r[5]), *(money(v) for v in r[6:])) for r in rows}


def money(value: object) -> Decimal:
    """A Money column read with plain SQL: ten-thousandths on SQLite, NUMERIC on PostgreSQL."""
    return (D(value) / 10000 if isinstance(value, int) else D(str(value))).normalize()


def payments(cluster: Cluster) -> dict[int, tuple[object, ...]]:
    rows = cluster.query(
        "SELECT s.line, p.amount, p.undisbursed, p.auto_disburse, i.name FROM payments p "
        "JOIN staged_records s ON s.key = p.source_key LEFT JOIN invoices i ON i.id = p.invoice_id")
    return {r[0]: (money(r[1]), money(r[2]), bool(r[3]), r[4]) for r in rows}


def normalized(expected: Mapping[tuple[str, int], tuple[object, ...]]) -> dict[tuple[str, int], tuple[object, ...]]:
    return {k: tuple(v.normalize() if isinstance(v, Decimal) else v for v in row) for k, row in expected.items()}


def test_a_year_of_ledger_loads_reconciles_and_reruns_idempotently(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_worker(concurrency=4)
    code, doc = cluster.run_json("run", REFERENCE, ACCOUNTS, YEAR)
    assert doc["state"] == "completed", doc
    got = {e: tuple(doc["entities"][e][c] for c in ("read", "committed", "skipped", "dead", "blocked")) for e in LEDGER_COUNTS}
    assert got == LEDGER_COUNTS
    assert code == 3, "dead records (planted) give exit 3, not 6: the money reconciles"
    [verdict] = doc["reconciliation"]
    assert verdict["reconciled"] is True, verdict
    assert (verdict["ignored_tax"], verdict["computed_tax"]) == ("1.0000", "0.3900")
    assert verdict["parked"] == {"debits": "40.0000", "credits": "0.0000", "taxes": "5.2000", "payments": "5.0000"}

    assert invoices(cluster) == normalized(INVOICES)
    assert payments(cluster) == {k: tuple(v.normalize() if isinstance(v, Decimal) else v for v in row)
                                 for k, row in PAYMENTS.items()}
    # two identical Debit lines are two charges; the negative one was refused at read
    assert cluster.query("SELECT count(*) FROM transactions") == [(9,)]  # 2 opening, 6 debits, 1 credit
    letters = {r[0]: r[1:] for r in cluster.query("SELECT line, stage, error_class, field, value, hint FROM dead_letters")}
    assert letters[18][:4] == ("read", "InvalidValue", "Debit", "-1.00")
    assert letters[20][:3] == ("read", "RuleViolation", "User")
    assert letters[21][1:4] == ("UnknownReference", "Package", "DSLL") and "'DSL'" in letters[21][4]
    assert letters[17][1:4] == ("UnknownReference", "Invoice", "bob-9") and "bob-1, bob-2, bob-3" in letters[17][4]

    before = {t: cluster.query(f"SELECT count(*) FROM {t}")[0][0]
              for t in ("invoices", "transactions", "payments", "payment_allocations")}
    code, again = cluster.run_json("run", REFERENCE, ACCOUNTS, YEAR)
    assert again["totals"]["committed"] == 0 and again["totals"]["skipped"] == doc["totals"]["committed"]
    assert again["reconciliation"][0]["reconciled"] is True
    assert {t: cluster.query(f"SELECT count(*) FROM {t}")[0][0] for t in before} == before
    assert invoices(cluster) == normalized(INVOICES), "a second run changes nothing"

    # reconciliation names a row changed behind its back
    run_id = doc["run_id"]
    cluster.execute("UPDATE transactions SET debit = debit + :d WHERE source_key = "
                       "(SELECT key FROM staged_records WHERE run_id = :r AND line = 22)",
                       d=10000 if "sqlite" in cluster.database_url else D("1"), r=run_id)
    done = cluster.cli("reconcile", run_id)
    assert done.returncode == 6, done.stdout + done.stderr
    assert "account 'ann' debits" in done.stdout and "off by 1.0000" in done.stdout
    assert f"{Path(YEAR).name}:22 Debit" in done.stdout and "debits source 12.0000, target 13.0000" in done.stdout

    # the report traces every source row
    out = tmp_path / "report"
    assert cluster.cli("report", run_id, "--out", str(out)).returncode == 0
    rows = [json.loads(line) for line in (out / f"{run_id}.jsonl").read_text().splitlines()]
    assert len(rows) == doc["totals"]["read"]
    with open(out / f"{run_id}.csv", newline="") as fh:
        assert [r["idempotency_key"] for r in csv.DictReader(fh)] == [r["idempotency_key"] for r in rows]
    by_line = {(Path(r["source_file"]).name, r["line"]): r for r in rows}
    assert by_line[("ledger-year.xml", 17)]["outcome"] == "dead"
    assert by_line[("ledger-year.xml", 17)]["field"] == "Invoice"
    assert by_line[("ledger-year.xml", 22)]["outcome"] == "committed" and by_line[("ledger-year.xml", 22)]["target_id"]
    assert sum(r["outcome"] == "dead" for r in rows) == doc["totals"]["dead"]


def test_child_account_refused_once_the_account_has_invoices(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_worker()
    ledger = tmp_path / "ledger.xml"
    ledger.write_text('<L>\n<Debit User="ann" Date="1/31/2007" Debit="5"/>\n<CloseInvoice/>\n</L>\n')
    code, doc = cluster.run_json("run", REFERENCE, str(ledger), str(Path(ACCOUNTS)))
    # the hierarchy is settled before any line loads: ChildAccount kid→bob loads, ann gets her invoice
    assert doc["entities"]["ChildAccount"]["committed"] == 1 and doc["entities"]["Debit"]["committed"] == 1
    late = tmp_path / "late.xml"
    late.write_text('<A>\n<ChildAccount Name="ann" Parent="bob"/>\n</A>\n')
    code, doc = cluster.run_json("run", str(late))
    assert code == 3 and doc["entities"]["ChildAccount"]["dead"] == 1
    [(message, hint)] = cluster.query("SELECT message, hint FROM dead_letters WHERE entity = 'ChildAccount'")
    assert "already has 1 invoice(s)" in message and "would not transfer and display correctly" in message
    assert cluster.query("SELECT parent_id FROM accounts WHERE name = 'ann'") == [(None,)]
