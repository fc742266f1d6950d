"""Invoices do not depend on the order records load in: the same ledger loaded in file order, in
reverse, shuffled within each wave, and by many concurrent worker processes gives identical invoices,
lines, payments and disbursements, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from producer.formats import FORMATS
from producer.staging import Stager
from shared.db import engine_for, session_factory, upgrade
from shared.dispatch import OUTCOMES
from shared.entities import REGISTRY
from shared.envelope import Envelope
from shared.errors import Position
from shared.schema import metadata
from shared.schema.control import StagedRecord
from shared.vault import Vault
from tests.conftest import CASES, Cluster
from workers.loaders import load_all
from workers.process import process_record

pytestmark = pytest.mark.slow

REFERENCE = CASES / "engageip" / "ledger-reference.xml"
ACCOUNTS = CASES / "engageip" / "ledger-accounts.xml"
Order = Callable[[list[int]], list[int]]


def write_busy_ledger(path: Path, months: int = 6) -> None:
    """Three accounts and a child, several lines per invoice, both kinds of close, opening balances,
    and several payments naming the same invoice (so disbursement order matters)."""
    rng = random.Random(7)
    lines = ['<OpeningBalance User="ann" Date="12/31/2006" Amount="-12.50"/>',
             '<OpeningBalance User="bob" Date="12/31/2006" Amount="30.00"/>']
    for month in range(1, months + 1):
        date = f"{month}/28/2007"
        for _ in range(rng.randint(2, 4)):
            amount = f"{rng.randint(500, 9000) / 100:.2f}"
            lines.append(f'<Debit User="ann" Date="{date}" Debit="{amount}" Tax1="1.00" Tax2="1.60" TaxCode="Residential"/>')
            lines.append(f'<Debit User="bob" Date="{date}" Debit="{amount}"/>')
        lines.append(f'<Credit User="ann" Date="{date}" Credit="0.75" Bulk="2" ApplyTax="True"/>')
        lines.append(f'<Debit User="kid" Date="{date}" Debit="9.99"/>')
        if month % 2:
            lines.append('<CloseInvoice CloseInvoice=""/>')
        else:
            lines += ['<CloseInvoice User="ann"/>', '<CloseInvoice User="bob" Printed="True"/>', '<CloseInvoice User="kid"/>']
        for who, invoice in (("ann", f"ann-{month + 1}"), ("bob", f"bob-{month + 1}"), ("kid", f"kid-{month}")):
            for _ in range(3):
                lines.append(f'<Payment User="{who}" Date="{date}" Credit="{rng.randint(100, 8000) / 100:.2f}" '
                             f'Invoice="{invoice}"/>')
    lines.append('<Payment User="kid" Date="7/1/2007" Credit="20.00" Invoice="bob-2"/>')
    lines.append('<Payment User="bob" Date="7/1/2007" Credit="20.00"/>')
    path.write_text("<Ledger>\n" + "\n".join(lines) + "\n</Ledger>\n")


def fresh(url: str) -> None:
    engine = engine_for(url)
    with engine.begin() as conn:
        metadata.drop_all(conn)
        conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()
    upgrade(url)


def stage(url: str, files: list[Path], vault: Vault) -> str:
    stager = Stager(session_factory(url), REGISTRY, vault, chunk_size=1000)
    return stager.stage(FORMATS.resolve(files, "engageip"), {}).run_id


def load(url: str, run_id: str, vault: Vault, order: Order) -> None:
    """Load every staged record wave by wave (the dispatcher's only guarantee), in ``order`` within a wave."""
    sf = session_factory(url)
    loaders = load_all()
    with sf() as session:
        rows = session.scalars(select_pending(run_id)).all()
        waves: dict[int, list[StagedRecord]] = {}
        for row in rows:
            waves.setdefault(row.wave, []).append(row)
        envelopes = {row.id: Envelope(run_id, row.id, row.entity, row.key, row.digest,
                                      Position(row.source_file, row.line, row.col), row.payload) for row in rows}
    for wave in sorted(waves):
        for record_id in order([r.id for r in waves[wave]]):
            env = envelopes[record_id]
            outcome = process_record(sf, REGISTRY, vault, loaders, REGISTRY[env.entity], env, 1)
            assert outcome in OUTCOMES


def select_pending(run_id: str) -> Any:
    return sa.select(StagedRecord).where(StagedRecord.run_id == run_id, StagedRecord.status == "pending") \
        .order_by(StagedRecord.id)


def snapshot(url: str) -> dict[str, Any]:
    """Everything the ledger wrote, keyed by what is stable across loads (names, sequences, source keys)."""
    with engine_for(url).connect() as conn:
        q = lambda sql: sorted(tuple(r) for r in conn.execute(sa.text(sql)))  # noqa: E731
        return {
            "invoices": q("SELECT a.name, i.sequence, i.name, i.state, i.printed, i.opening_balance, i.subtotal, i.tax, "
                          "i.total, i.amount_paid, i.outstanding FROM invoices i JOIN accounts a ON a.id = i.account_id"),
            "lines": q("SELECT t.source_key, i.name, t.kind, t.debit, t.credit, t.tax1, t.tax2, t.tax, t.ignored_tax "
                       "FROM transactions t JOIN invoices i ON i.id = t.invoice_id"),
            "payments": q("SELECT p.source_key, p.amount, p.undisbursed, p.auto_disburse, i.name FROM payments p "
                          "LEFT JOIN invoices i ON i.id = p.invoice_id"),
            "allocations": q("SELECT p.source_key, i.name, a.amount FROM payment_allocations a "
                             "JOIN payments p ON p.id = a.payment_id JOIN invoices i ON i.id = a.invoice_id"),
            "outcomes": q("SELECT key, status FROM staged_records"),
        }


def shuffled(seed: int) -> Order:
    def order(ids: list[int]) -> list[int]:
        out = list(ids)
        random.Random(seed).shuffle(out)
        return out
    return order


def test_same_invoices_whatever_the_load_order(database_url: str, tmp_path: Path) -> None:
    ledger = tmp_path / "busy-ledger.xml"
    write_busy_ledger(ledger)
    vault = Vault(os.urandom(32))
    snapshots = []
    for order in (lambda ids: ids, lambda ids: ids[::-1], shuffled(1), shuffled(2)):
        fresh(database_url)
        run_id = stage(database_url, [REFERENCE, ACCOUNTS, ledger], vault)
        load(database_url, run_id, vault, order)
        snapshots.append(snapshot(database_url))
    baseline = snapshots[0]
    assert len(baseline["invoices"]) == 20 and len(baseline["allocations"]) > 20  # 3 accounts × 6 months + 2 opening
    assert any(row[2] > 0 for row in baseline["payments"]), "some payment is partly undisbursed"
    for other in snapshots[1:]:
        assert other == baseline
    engine_for(database_url).dispose()


def test_same_invoices_with_many_concurrent_workers(cluster: Cluster, tmp_path: Path) -> None:
    ledger = tmp_path / "busy-ledger.xml"
    write_busy_ledger(ledger)
    for _ in range(3):
        cluster.start_worker(concurrency=4)
    code, doc = cluster.run_json("run", str(REFERENCE), str(ACCOUNTS), str(ledger))
    assert doc["state"] == "completed" and doc["reconciliation"][0]["reconciled"], doc
    concurrent = snapshot(cluster.database_url)
    # the same files, loaded one record at a time in file order, into a database of its own
    sequential_url = f"sqlite:///{tmp_path / 'sequential.db'}"
    upgrade(sequential_url)
    vault = Vault(base64.urlsafe_b64decode(cluster.env["CUTOVER_VAULT_KEY"]))
    load(sequential_url, stage(sequential_url, [REFERENCE, ACCOUNTS, ledger], vault), vault, lambda ids: ids)
    sequential = snapshot(sequential_url)
    normalise = _money_as_decimal
    assert normalise(concurrent, cluster.database_url) == normalise(sequential, sequential_url)


def _money_as_decimal(snap: dict[str, Any], url: str) -> dict[str, Any]:
    """Plain SQL reads Money as ten-thousandths on SQLite and NUMERIC on PostgreSQL: compare as Decimal."""
    from decimal import Decimal

    def fix(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
            return value
        return (Decimal(value) / 10000 if url.startswith("sqlite") else Decimal(value)).normalize()

    out = {}
    for table, rows in snap.items():
        if table == "invoices":  # sequence stays an integer
            out[table] = sorted((r[0], r[1], r[2], r[3], bool(r[4]), bool(r[5]), *map(fix, r[6:])) for r in rows)
        elif table == "payments":
            out[table] = sorted((r[0], fix(r[1]), fix(r[2]), bool(r[3]), r[4]) for r in rows)
        elif table == "outcomes":
            out[table] = rows
        else:
            out[table] = sorted(tuple(fix(v) for v in r) for r in rows)
    return out
