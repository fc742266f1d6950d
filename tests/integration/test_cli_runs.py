"""The command line around a real run: `run --dry-run` is `validate`, `last` and `-` stand for the
newest run wherever a run id is asked, and `status` shows how long each run took."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import CASES, Cluster

pytestmark = pytest.mark.slow

REFERENCE = str(CASES / "engageip" / "faults-reference.xml")
ACCOUNTS = str(CASES / "engageip" / "faults-accounts.xml")


def test_dry_run_is_validate_and_writes_nothing(cluster: Cluster) -> None:
    dry = cluster.cli("run", "--dry-run", REFERENCE, ACCOUNTS)
    checked = cluster.cli("validate", REFERENCE, ACCOUNTS)
    assert dry.returncode == checked.returncode == 3
    letter_ids = re.compile(r"dead letter #\d+")  # of the rolled-back transaction: PostgreSQL does not reuse them
    assert letter_ids.sub("#N", dry.stdout) == letter_ids.sub("#N", checked.stdout)
    assert dry.stdout.splitlines()[-1].endswith("would not load")
    assert cluster.query("SELECT count(*) FROM runs") == [(0,)]
    assert cluster.table_counts() == {"reference_items": 0, "accounts": 0, "contacts": 0, "contact_points": 0}
    refused = cluster.cli("run", "--dry-run", "--email", "ops@example.com", REFERENCE)
    assert refused.returncode == 4 and "--dry-run checks and writes nothing" in refused.stderr


def test_last_and_dash_stand_for_the_newest_run(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_worker()
    _, older = cluster.run_json("run", REFERENCE)
    code, run = cluster.run_json("run", REFERENCE, ACCOUNTS)
    assert code == 3 and run["run_id"] != older["run_id"]
    run_id = run["run_id"]

    _, shown = cluster.run_json("status", "last")
    assert shown["run_id"] == run_id and shown["duration_seconds"] > 0
    reconciled = cluster.cli("reconcile", "-", "--json")
    assert reconciled.returncode == 0 and json.loads(reconciled.stdout)["run_id"] == run_id
    reported = cluster.cli("report", "last", "--out", str(tmp_path), "--format", "csv")
    assert reported.returncode == 0 and (tmp_path / f"{run_id}.csv").is_file()
    letters = json.loads(cluster.cli("dlq", "list", "--run", "last", "--json").stdout)
    assert letters and {letter["run_id"] for letter in letters} == {run_id}
    resumed = cluster.cli("resume", "last")
    assert resumed.returncode == 4 and f"run {run_id} is completed; nothing to resume" in resumed.stderr

    # a replay is the newest dispatch: `status last` shows it, `reconcile last` still means the newest run
    code, replay = cluster.run_json("dlq", "replay", "--run", "-")
    assert replay["run_id"].startswith("x")
    assert cluster.run_json("status", "last")[1]["run_id"] == replay["run_id"]
    assert json.loads(cluster.cli("reconcile", "last", "--json").stdout)["run_id"] == run_id

    listed = cluster.cli("status")
    assert listed.returncode == 0
    header = next(line for line in listed.stdout.splitlines() if "duration" in line)
    assert header.index("created") < header.index("duration") < header.index("read")
    row = next(line for line in listed.stdout.splitlines() if run_id in line)
    assert re.search(r"\b\d+s\b|\b\d+m \d{2}s\b", row), row
