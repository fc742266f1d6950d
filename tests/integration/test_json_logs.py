"""Logs as JSON lines on request: the workers (setting `log_format = json`) and the producer
(`cutover run --log-format json`) write one JSON object a line, with run id, entity, record key and
outcome as fields an aggregator can index, and never a secret."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CASES, Cluster

pytestmark = pytest.mark.slow

REFERENCE = str(CASES / "engageip" / "faults-reference.xml")
ACCOUNTS = str(CASES / "engageip" / "faults-accounts.xml")


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_worker_and_producer_log_json_lines_with_record_fields(cluster: Cluster, tmp_path: Path) -> None:
    cluster.env["CUTOVER_LOG_FORMAT"] = "json"
    cluster.start_worker()
    producer_env = {k: v for k, v in cluster.env.items() if k != "CUTOVER_LOG_FORMAT"}
    done = subprocess.run([sys.executable, "-m", "ops.cli", "run", REFERENCE, ACCOUNTS, "--log-format", "json", "--json"],
                          env=producer_env, capture_output=True, text=True, timeout=300, cwd=cluster.home)
    assert done.returncode == 3, done.stderr
    doc = json.loads(done.stdout)
    run_id = doc["run_id"]
    cluster.cli("report", run_id, "--out", str(tmp_path), "--format", "csv")
    with (tmp_path / f"{run_id}.csv").open(encoding="utf-8", newline="") as fh:
        keys = {(row["entity"], row["line"]): (row["idempotency_key"], row["outcome"]) for row in csv.DictReader(fh)}

    produced = json_lines(done.stderr)
    assert done.stderr.strip() and len(produced) == len(done.stderr.strip().splitlines()), "every line is JSON"
    assert any(line["message"].startswith(f"run {run_id} staged:") and line["records"] == doc["totals"]["read"]
               for line in produced)
    unknown = next(line for line in produced if line.get("entity") == "user")
    assert (unknown["run_id"], unknown["outcome"], unknown["error_class"]) == (run_id, "dead", "UnknownName")
    line_no = unknown["position"].rsplit(":", 1)[1]
    assert (unknown["record_key"], "dead") == keys[("user", line_no)]
    repeat = next(line for line in produced if line.get("outcome") == "skipped")
    assert repeat["entity"] == "User" and keys[("User", repeat["position"].rsplit(":", 1)[1])][0] == repeat["record_key"]

    worker = json_lines(cluster.log.read_text(encoding="utf-8"))
    assert worker and all({"time", "level", "logger", "message"} <= set(line) for line in worker)
    carol = next(line for line in worker if line.get("entity") == "User" and line.get("outcome") == "dead")
    assert carol["run_id"] == run_id and carol["error_class"] == "UnknownReference"
    assert keys[("User", carol["position"].rsplit(":", 1)[1])] == (carol["record_key"], "dead")
    blocked = [line for line in worker if line.get("outcome") == "blocked"]
    assert blocked and all(line["run_id"] == run_id and line["error_class"] == "Blocked" for line in blocked)
    batches = [line for line in worker if "records" in line and line.get("run_id") == run_id]
    assert sum(line["records"] for line in batches if line["entity"] == "User") >= 2
    assert "-PW-" not in cluster.log.read_text(encoding="utf-8") + done.stderr, "no password in any log line"
