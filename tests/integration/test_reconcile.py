"""Reconciliation and the exit statuses around it (docs/cli.md, runbook §5), with real workers on SQLite
and PostgreSQL: the "row missing" and "counts off" reports, `reconcile` while records still load, and
status 6 from `run`, `dlq replay` and `resume` — taking precedence over 3 — when the target no longer
holds what the source says. Also `run --timeout` (status 5) with a configured broker, where the run goes
on without the command."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CASES, Cluster, wait_until

pytestmark = pytest.mark.slow

REFERENCE = str(CASES / "engageip" / "ledger-reference.xml")
ACCOUNTS = str(CASES / "engageip" / "ledger-accounts.xml")
YEAR = str(CASES / "engageip" / "ledger-year.xml")
LEDGER = (REFERENCE, ACCOUNTS, YEAR)


def record_key(cluster: Cluster, run_id: str, line: int) -> str:
    [(key,)] = cluster.query("SELECT key FROM staged_records WHERE run_id = :r AND source_file = :f AND line = :l",
                             r=run_id, f=YEAR, l=line)
    return str(key)


def add_to_debit(cluster: Cluster, run_id: str, line: int, amount: str) -> None:
    """Change a loaded line behind cutover's back."""
    cluster.execute("UPDATE transactions SET debit = debit + :d WHERE source_key = :k", d=cluster.money(amount),
                    k=record_key(cluster, run_id, line))


def reconcile(cluster: Cluster, run_id: str) -> tuple[int, list[str], dict[str, Any]]:
    plain = cluster.cli("reconcile", run_id)
    code, doc = cluster.run_json("reconcile", run_id)
    assert code == plain.returncode
    return plain.returncode, plain.stdout.splitlines(), doc


def test_missing_rows_and_counts_off_are_reported_and_a_rerun_exits_6(cluster: Cluster) -> None:
    cluster.start_worker()
    code, first = cluster.run_json("run", *LEDGER)
    assert code == 3 and first["reconciliation"][0]["reconciled"] is True, first
    run_id = first["run_id"]
    code, lines, doc = reconcile(cluster, run_id)
    assert code == 0 and lines[0].startswith("reconciled: 3 account(s), ") and doc["reconciled"] is True

    # a payment row deleted behind cutover's back (line 16: bob's 5.00, auto-disbursed, nothing allocated)
    cluster.execute("DELETE FROM payments WHERE source_key = :k", k=record_key(cluster, run_id, 16))
    code, lines, doc = reconcile(cluster, run_id)
    assert code == 6, lines
    assert lines[0] == "NOT reconciled: 1 money difference(s), 1 row(s), 0 count(s) off"
    assert any(re.fullmatch(r"account 'bob' payments: source 10\.0000 − 5\.0000 parked = 5\.0000 expected, "
                            r"target has 0(\.0+)? \(off by -5\.0000\)", line) for line in lines), lines
    assert f"{YEAR}:16 Payment (committed): its row is missing from the target" in lines
    assert doc["reconciled"] is False and doc["counts"] == [] and doc["pending"] == 0
    assert doc["rows"] == [f"{YEAR}:16 Payment (committed): its row is missing from the target"]
    [difference] = doc["differences"]
    assert {k: difference[k] for k in ("account", "metric", "source", "parked", "expected")} == \
        {"account": "bob", "metric": "payments", "source": "10.0000", "parked": "5.0000", "expected": "5.0000"}

    # counts that do not add up (the run's read count changed behind its back)
    cluster.execute("UPDATE run_entities SET read = read + 1 WHERE run_id = :r AND entity = 'Credit'", r=run_id)
    code, lines, doc = reconcile(cluster, run_id)
    assert code == 6
    assert lines[0] == "NOT reconciled: 1 money difference(s), 1 row(s), 1 count(s) off"
    assert doc["counts"] == ["Credit: read 2 but 1 accounted for (committed 1, skipped 0, dead 0, blocked 0)"]
    assert doc["counts"][0] in lines
    cluster.execute("UPDATE run_entities SET read = read - 1 WHERE run_id = :r AND entity = 'Credit'", r=run_id)

    # the same files again: everything skipped or dead again (3), but the skipped payment's row is gone: 6 wins
    code, again = cluster.run_json("run", *LEDGER)
    assert again["state"] == "completed" and again["totals"]["committed"] == 0, again
    assert again["totals"]["dead"] > 0, "records are dead again: without the missing row this would be status 3"
    assert code == 6, again
    [verdict] = again["reconciliation"]
    assert verdict["run_id"] == again["run_id"] and verdict["reconciled"] is False
    assert verdict["rows"] == [f"{YEAR}:16 Payment (skipped): its row is missing from the target"]
    plain = cluster.cli("run", *LEDGER)
    assert plain.returncode == 6
    assert "NOT reconciled: 1 money difference(s), 1 row(s), 0 count(s) off" in plain.stdout


def test_replay_exits_6_when_a_run_it_loads_does_not_reconcile(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_worker()
    code, first = cluster.run_json("run", *LEDGER)
    assert code == 3, first
    run_id = first["run_id"]
    add_to_debit(cluster, run_id, 22, "1")  # ann's 12.00 line now says 13.00

    fix = tmp_path / "fix.xml"
    fix.write_text('<?xml version="1.0"?>\n<Fix>\n  <Service Name="DSLL"/>\n</Fix>\n')
    assert cluster.run_json("run", str(fix))[0] == 0
    code, replay = cluster.run_json("dlq", "replay", "--run", run_id)
    assert replay["state"] == "completed", replay
    assert replay["entities"]["Debit"]["committed"] == 1, "line 21 loads now that its service exists"
    assert replay["totals"]["dead"] > 0, "the payment to bob-9 fails again: on its own that is status 3"
    assert code == 6, replay
    [verdict] = replay["reconciliation"]
    assert verdict["run_id"] == run_id and verdict["reconciled"] is False
    assert [d["account"] for d in verdict["differences"]] == ["ann"]
    assert any(f"{YEAR}:22 Debit → transactions #" in row and "debits source 12.0000, target 13.0000" in row
               for row in verdict["rows"]), verdict["rows"]


def test_timeout_leaves_a_shared_run_going_and_resume_exits_6(cluster: Cluster) -> None:
    """No worker yet: `run --timeout` stops waiting (5), `reconcile` says the run is still loading (6), and
    the run finishes by itself once a worker comes (configured broker). Then a second run of the same files,
    stopped the same way, is resumed after a row it will match was changed: `resume` exits 6."""
    timed_out = cluster.cli("run", *LEDGER, "--timeout", "1")
    assert timed_out.returncode == 5, timed_out.stdout + timed_out.stderr
    run_id = re.search(r"run (r[\w-]+): staged", timed_out.stdout).group(1)  # type: ignore[union-attr]
    assert f"stopped waiting; the run goes on where workers run: cutover status {run_id}" in timed_out.stdout
    assert "reconciled" not in timed_out.stdout, "no reconciliation is printed when waiting stopped early"

    code, lines, doc = reconcile(cluster, run_id)
    totals = cluster.run_json("status", run_id)[1]["totals"]
    assert totals["pending"] == totals["read"] - totals["dead"] > 0, "all but the records refused at read wait"
    assert code == 6 and lines[0].endswith(f", {totals['pending']} record(s) still loading"), lines
    assert doc["pending"] == totals["pending"] and doc["reconciled"] is False

    worker = cluster.start_worker()
    wait_until(lambda: cluster.run_json("status", run_id)[1]["state"] == "completed", 180,
               "the run to finish without the command that started it")
    assert reconcile(cluster, run_id)[0] == 0

    os.killpg(worker.pid, signal.SIGTERM)  # a planned stop: the next run waits for a worker
    worker.wait(60)
    code, second = cluster.run_json("run", *LEDGER, "--timeout", "1")
    assert code == 5 and second["state"] in ("ready", "running"), second
    assert "reconciliation" not in second
    add_to_debit(cluster, run_id, 22, "1")  # the second run's line 22 is skipped: it matches this row

    resume = cluster.popen("resume", second["run_id"], "--json")
    cluster.start_worker()
    out, err = resume.communicate(timeout=240)
    assert resume.returncode == 6, out + err
    import json

    resumed = json.loads(out)
    assert resumed["exit_code"] == 6 and resumed["state"] == "completed"
    assert resumed["totals"]["committed"] == 0 and resumed["totals"]["dead"] > 0, "6 takes precedence over 3"
    assert resumed["reconciliation"][0]["reconciled"] is False
