"""End to end on real Redis, real worker processes, SQLite and PostgreSQL: the conservation
invariant, idempotent re-runs, replay releasing blocked children, refusal of unreadable files."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import CASES, Cluster

pytestmark = pytest.mark.slow

REFERENCE = str(CASES / "engageip" / "faults-reference.xml")
ACCOUNTS = str(CASES / "engageip" / "faults-accounts.xml")
FIX = str(CASES / "engageip" / "fix-reference.xml")

# entity: (read, committed, skipped, dead, blocked) for faults-reference.xml + faults-accounts.xml
FIRST_RUN = {
    "Owner": (1, 1, 0, 0, 0), "Role": (1, 1, 0, 0, 0), "Culture": (1, 1, 0, 0, 0), "Currency": (1, 1, 0, 0, 0),
    "Language": (1, 1, 0, 0, 0), "StatusType": (1, 1, 0, 0, 0), "TaxCode": (1, 1, 0, 0, 0),
    "BillGroup": (1, 1, 0, 0, 0), "CreditRating": (1, 1, 0, 0, 0), "ContactType": (1, 1, 0, 0, 0),
    "ContactPointType": (3, 3, 0, 0, 0),
    # alice, bob | alice again (identical) | carol (TaxCode), dave (case), erin (BillDay), frank (date), bob (conflict)
    "User": (8, 2, 1, 5, 0),
    "user": (1, 0, 0, 1, 0),  # unknown element, counted under the name it was written with
    "Contact": (6, 2, 0, 2, 2),  # ghost account + bad attribute dead; carol's two blocked
    "ContactEmail": (3, 1, 0, 1, 1),
    "ContactPhone": (2, 1, 0, 1, 0),
    "ContactFax": (1, 1, 0, 0, 0),
    "ContactPoint": (1, 1, 0, 0, 0),
    "Company": (2, 1, 0, 0, 1),
    "ChildAccount": (2, 1, 0, 1, 0),  # bob under alice, then alice under bob: a cycle
}
COLUMNS = ("read", "committed", "skipped", "dead", "blocked")


def counts(doc: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    return {name: tuple(row[c] for c in COLUMNS) for name, row in doc["entities"].items()}


def assert_balanced(doc: dict[str, Any]) -> None:
    for name, row in doc["entities"].items():
        assert row["read"] == row["committed"] + row["skipped"] + row["dead"] + row["blocked"], (name, row)
    assert doc["balanced"] is True


def test_conservation_invariant_with_planted_faults(cluster: Cluster) -> None:
    cluster.start_worker()
    code, doc = cluster.run_json("run", REFERENCE, ACCOUNTS)
    assert doc["state"] == "completed"
    assert code == 3, "dead or blocked records give exit status 3"
    assert counts(doc) == FIRST_RUN
    assert_balanced(doc)
    assert cluster.table_counts() == {"reference_items": 13, "accounts": 2, "contacts": 2, "contact_points": 4}
    # the earlier of two same-named records wins: bob keeps BillDay 4, not 9
    assert cluster.query("SELECT bill_day FROM accounts WHERE name = 'bob'") == [(4,)]
    assert cluster.query("SELECT company FROM contacts WHERE name = 'Alice A'") == [("Smith & Sons",)]


def test_dead_letters_explain_themselves(cluster: Cluster) -> None:
    cluster.start_worker()
    cluster.run_json("run", REFERENCE, ACCOUNTS)
    listed = cluster.cli("dlq", "list", "--json")
    import json

    letters = json.loads(listed.stdout)
    by_message = {(lt["entity"], lt["error_class"]): lt for lt in letters}
    dave = next(lt for lt in letters if lt["value"] == "residential")
    assert dave["error_class"] == "UnknownReference" and "did you mean 'Residential'" in dave["hint"]
    assert dave["position"].endswith("faults-accounts.xml:6") and dave["field"] == "TaxCode"
    unknown = by_message[("user", "UnknownName")]
    assert "did you mean 'User'" in unknown["hint"] and unknown["stage"] == "read"
    attr = next(lt for lt in letters if lt["entity"] == "Contact" and lt["error_class"] == "UnknownName")
    assert attr["field"] == "contactName" and "ContactName" in attr["hint"]
    frank = next(lt for lt in letters if lt["field"] == "CreatedDate")
    assert frank["value"] == "2/30/2007" and frank["position"].endswith(":8")
    blocked = [lt for lt in letters if lt["outcome"] == "blocked" and lt["entity"] == "Contact"]
    assert len(blocked) == 2 and all("carol" in lt["message"] for lt in blocked)
    conflict = by_message[("User", "Conflict")]
    assert "earlier" in conflict["message"] and conflict["position"].endswith(":10")


def test_second_run_commits_nothing(cluster: Cluster) -> None:
    cluster.start_worker()
    cluster.run_json("run", REFERENCE, ACCOUNTS)
    before = cluster.table_counts()
    ledger_before = cluster.query("SELECT count(*) FROM ledger")[0][0]
    code, doc = cluster.run_json("run", REFERENCE, ACCOUNTS)
    assert code == 3
    assert doc["totals"]["committed"] == 0
    assert doc["totals"]["skipped"] == sum(v[1] + v[2] for v in FIRST_RUN.values())
    assert_balanced(doc)
    assert cluster.table_counts() == before
    assert cluster.query("SELECT count(*) FROM ledger")[0][0] == ledger_before


def test_replay_after_fixing_reference_data_releases_blocked_children(cluster: Cluster) -> None:
    cluster.start_worker()
    _, first = cluster.run_json("run", REFERENCE, ACCOUNTS)
    run_id = first["run_id"]
    code, fix = cluster.run_json("run", FIX)
    assert code == 0 and fix["totals"]["committed"] == 1
    code, replay = cluster.run_json("dlq", "replay", "--run", run_id)
    assert replay["state"] == "completed"
    assert code == 3, "the letters that fail again (dave, the ghost contact, the cycle…) keep exit status 3"
    assert replay["totals"]["dead"] > 0 and replay["reconciliation"][0]["reconciled"] is True
    # carol, her two contacts, carol's email and company now load; the rest stays dead
    assert replay["entities"]["User"]["committed"] == 1
    assert replay["entities"]["Contact"]["committed"] == 2
    assert replay["entities"]["ContactEmail"]["committed"] == 1
    assert replay["entities"]["Company"]["committed"] == 1
    assert replay["totals"]["blocked"] == 0
    _, after = cluster.run_json("status", run_id)
    assert counts(after)["User"] == (8, 3, 1, 4, 0)
    assert counts(after)["Contact"] == (6, 4, 0, 2, 0)
    assert counts(after)["Company"] == (2, 2, 0, 0, 0)
    assert_balanced(after)
    carol = "SELECT count(*) FROM contacts c JOIN accounts a ON a.id = c.account_id WHERE a.name = 'carol'"
    assert cluster.query(carol) == [(2,)]
    # replaying again finds only letters that still fail: nothing new commits
    before = cluster.table_counts()
    code, again = cluster.run_json("dlq", "replay", "--run", run_id)
    assert code == 3 and again["totals"]["committed"] == 0 and again["totals"]["dead"] == replay["totals"]["dead"]
    assert cluster.table_counts() == before


def test_truncated_file_is_refused_and_nothing_loads(cluster: Cluster) -> None:
    cluster.start_worker()
    done = cluster.cli("run", REFERENCE, str(CASES / "engageip" / "run-truncated.xml"))
    assert done.returncode == 4
    assert "run-truncated.xml:7" in done.stdout + done.stderr
    assert "Nothing was loaded" in done.stdout
    assert cluster.table_counts() == {"reference_items": 0, "accounts": 0, "contacts": 0, "contact_points": 0}
    assert cluster.query("SELECT count(*) FROM staged_records") == [(0,)]
    assert cluster.query("SELECT state FROM runs") == [("refused",)]


def test_validate_reports_everything_and_writes_nothing(cluster: Cluster) -> None:
    done = cluster.cli("validate", REFERENCE, ACCOUNTS)
    assert done.returncode == 3, done.stderr
    out = done.stdout
    assert "faults-accounts.xml:6: User: dead (UnknownReference): TaxCode 'residential' not found" in out
    assert "faults-accounts.xml:14: Contact: blocked" in out
    assert "faults-accounts.xml:22: ContactPhone: dead (UnknownReference)" in out
    assert cluster.table_counts() == {"reference_items": 0, "accounts": 0, "contacts": 0, "contact_points": 0}
    assert cluster.query("SELECT count(*) FROM runs") == [(0,)]
    clean = cluster.cli("validate", REFERENCE)
    assert clean.returncode == 0 and "13 records checked, 0 would not load" in clean.stdout
