"""`cutover report RUN --split`: as Salesforce's Data Loader does, a success file and an error file
beside the combined one. On the engageip example, every record is in exactly one of them, the
success rows carry their target id, and the error rows carry their fields and error, with no secret
in clear."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from shared.vault import SECRET_MASK
from tests.conftest import Cluster

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "engageip"
SECRET_ATTRIBUTES = re.compile(r'\b(?:Password|CardNumber|AccountNumber)="([^"]+)"')


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_example_success_and_error_files_hold_every_record_once(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_worker()
    code, doc = cluster.run_json("run", str(EXAMPLE), timeout=600)
    assert code == 3, doc
    run_id, totals = doc["run_id"], doc["totals"]
    out = tmp_path / "results"
    done = cluster.cli("report", run_id, "--out", str(out), "--split")
    assert done.returncode == 0, done.stderr
    names = sorted(line.removeprefix(f"wrote {out}/") for line in done.stdout.splitlines())
    assert names == sorted(f"{run_id}.{part}" for part in ("jsonl", "csv", "success.jsonl", "success.csv",
                                                          "errors.jsonl", "errors.csv"))

    success, errors = rows(out / f"{run_id}.success.csv"), rows(out / f"{run_id}.errors.csv")
    assert len(success) == totals["committed"] + totals["skipped"]
    assert len(errors) == totals["dead"] + totals["blocked"]
    keys = [r["idempotency_key"] for r in success + errors]
    assert len(keys) == len(set(keys)) == totals["read"] == len(rows(out / f"{run_id}.csv")) == 1508
    assert {r["outcome"] for r in success} == {"committed", "skipped"}
    assert [r for r in success if not r["target_id"] and r["entity"] != "CloseInvoice"] == []
    assert {r["outcome"] for r in errors} == {"dead", "blocked"}
    assert all(r["error_class"] and r["error"] for r in errors)

    dave = next(r for r in errors if r["value"] == "residential")  # a dead User: its own fields, password masked
    assert dave["entity"] == "User" and dave["TaxCode"] == "residential" and dave["Password"] == SECRET_MASK
    assert dave["Name"] and "residential" in dave["error"] and "Residential" in dave["hint"]

    error_lines = (out / f"{run_id}.errors.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(error_lines) == len(errors)
    assert all(isinstance(json.loads(line)["fields"], dict) for line in error_lines)
    assert len((out / f"{run_id}.success.jsonl").read_text(encoding="utf-8").splitlines()) == len(success)

    secrets = {m.group(1) for f in EXAMPLE.glob("*.xml") for m in SECRET_ATTRIBUTES.finditer(f.read_text())}
    assert len(secrets) > 100
    for name in (f"{run_id}.errors.csv", f"{run_id}.errors.jsonl"):
        text = (out / name).read_text(encoding="utf-8")
        assert "vault:" not in text
        assert [s for s in secrets if s in text] == [], name
