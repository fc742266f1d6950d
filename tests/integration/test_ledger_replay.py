"""Replaying ledger records (runbook §5 and §7), with real workers on SQLite and PostgreSQL, figures worked
by hand: money parked in dead letters moves to the target and the run still reconciles; a replayed line
lands on the invoice the producer planned for it when the file was read (closed if the file closed it,
even though the close loaded before the account existed); payments to an invoice are disbursed again
in source order, so an earlier payment that loads late is paid first."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import Cluster
from tests.integration.test_ledger import invoices, normalized, payments

pytestmark = pytest.mark.slow

D = Decimal


def write(path: Path, root: str, *records: str) -> str:
    path.write_text(f'<?xml version="1.0" encoding="utf-8"?>\n<{root}>\n' + "".join(f"  {r}\n" for r in records)
                    + f"</{root}>\n", encoding="utf-8")
    return str(path)


def files(tmp_path: Path) -> tuple[str, str, str]:
    reference = write(tmp_path / "reference.xml", "Configuration", '<Owner Name="Acme"/>', '<Service Name="DSL"/>',
                      '<Service Name="Opening Balance"/>', '<PaymentType Name="Cash"/>')
    accounts = write(tmp_path / "accounts.xml", "Accounts", '<User Name="ann" Owner="Acme"/>',
                     '<User Name="zed" Owner="Acme" TaxCode="Gold"/>')  # no TaxCode Gold yet: zed is dead
    ledger = write(
        tmp_path / "ledger.xml", "Ledger",
        '<OpeningBalance User="zed" Date="12/31/2006" Amount="10.00"/>',  # line 3: zed-1 (blocked)
        '<Debit User="ann" Date="1/31/2007" Debit="40.00"/>',  # line 4: ann-1
        '<Debit User="ann" Date="1/31/2007" Debit="10.00" Package="Fiber"/>',  # line 5: ann-1, no Service Fiber: dead
        '<Debit User="zed" Date="1/31/2007" Debit="20.00"/>',  # line 6: zed-2 (blocked)
        '<CloseInvoice CloseInvoice=""/>',  # line 7: closes ann-1 and zed-2
        '<Payment User="ann" Date="2/5/2007" Credit="30.00" Invoice="ann-1" PaymentType="Cheque"/>',  # 8: dead
        '<Payment User="ann" Date="2/6/2007" Credit="30.00" Invoice="ann-1"/>',  # line 9
        '<Payment User="zed" Date="2/6/2007" Credit="25.00" Invoice="zed-2"/>',  # line 10 (blocked)
        '<Debit User="zed" Date="2/28/2007" Debit="5.00"/>',  # line 11: zed-3, open (blocked)
    )
    return reference, accounts, ledger


# (account, sequence): name, state, printed, opening, subtotal, tax, total, paid, outstanding
BEFORE = {("ann", 1): ("ann-1", "closed", False, False, D("40"), D("0"), D("40"), D("30"), D("10"))}
AFTER = {
    ("ann", 1): ("ann-1", "closed", False, False, D("50"), D("0"), D("50"), D("50"), D("0")),
    ("zed", 1): ("zed-1", "closed", True, True, D("10"), D("0"), D("10"), D("0"), D("10")),
    ("zed", 2): ("zed-2", "closed", False, False, D("20"), D("0"), D("20"), D("20"), D("0")),
    ("zed", 3): ("zed-3", "open", False, False, D("5"), D("0"), D("5"), D("0"), D("5")),
}


def test_replayed_ledger_records_land_where_planned_and_payments_follow_source_order(cluster: Cluster,
                                                                                      tmp_path: Path) -> None:
    reference, accounts, ledger = files(tmp_path)
    cluster.start_worker()
    code, first = cluster.run_json("run", reference, accounts, ledger)
    assert code == 3, first
    got = {e: (r["committed"], r["dead"], r["blocked"]) for e, r in first["entities"].items()}
    assert {e: got[e] for e in ("User", "OpeningBalance", "Debit", "CloseInvoice", "Payment")} == {
        "User": (1, 1, 0), "OpeningBalance": (0, 0, 1), "Debit": (1, 1, 2), "CloseInvoice": (1, 0, 0),
        "Payment": (1, 1, 1)}
    [verdict] = first["reconciliation"]
    assert verdict["reconciled"] is True
    assert verdict["parked"] == {"debits": "45.0000", "credits": "0.0000", "taxes": "0.0000", "payments": "55.0000"}
    assert verdict["target"] == {"debits": "40.0000", "credits": "0.0000", "taxes": "0.0000", "payments": "30.0000"}
    assert invoices(cluster) == normalized(BEFORE)
    assert payments(cluster) == {9: (D("30"), D("0"), False, "ann-1")}

    fix = write(tmp_path / "fix.xml", "Fix", '<TaxCode Name="Gold" Rate1="0.10"/>', '<Service Name="Fiber"/>',
                '<PaymentType Name="Cheque"/>')
    assert cluster.run_json("run", fix)[0] == 0
    done = cluster.cli("dlq", "replay")
    assert done.returncode == 0, done.stdout + done.stderr
    assert ("reconciled: 2 account(s), debits 85.0000, credits 0.0000, taxes 0.0000, payments 85.0000 as the source "
            "says") in done.stdout.splitlines(), "nothing parked any more: the money moved to the target"

    assert invoices(cluster) == normalized(AFTER)
    # line 8 comes first in the source: disbursed first although it loaded last; line 9 now gets the rest
    assert payments(cluster) == {
        8: (D("30"), D("0"), False, "ann-1"), 9: (D("30"), D("10"), False, "ann-1"), 10: (D("25"), D("5"), False, "zed-2")}
    lines = dict(cluster.query(
        "SELECT s.line, i.name FROM transactions t JOIN staged_records s ON s.key = t.source_key "
        "JOIN invoices i ON i.id = t.invoice_id"))
    assert lines == {3: "zed-1", 4: "ann-1", 5: "ann-1", 6: "zed-2", 11: "zed-3"}
    code, after = cluster.run_json("reconcile", first["run_id"])
    assert code == 0 and after["parked"] == {"debits": "0.0000", "credits": "0.0000", "taxes": "0.0000",
                                             "payments": "0.0000"}
    assert after["target"] == {"debits": "85.0000", "credits": "0.0000", "taxes": "0.0000", "payments": "85.0000"}
