"""Dead letters as docs/cli.md and runbook §6–§8 and §11 describe them, through the real CLI with real
workers, on SQLite and PostgreSQL: the replay filters (ids, run, entity, error class, outcome) and their
exit statuses, "nothing to replay", letters written at read time that cannot be replayed, `--upsert` on
`run` and on `dlq replay`, and `dlq discard` (the prompt, `--yes`, and children of a discarded parent
turning into UnknownReference when replayed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.settings import Settings
from tests.conftest import CASES, Cluster

pytestmark = pytest.mark.slow

REFERENCE = str(CASES / "engageip" / "faults-reference.xml")
ACCOUNTS = str(CASES / "engageip" / "faults-accounts.xml")
FIX = str(CASES / "engageip" / "fix-reference.xml")


def letters(cluster: Cluster, *filters: str) -> list[dict[str, Any]]:
    code, found = cluster.run_json("dlq", "list", *filters)
    assert code == 0
    return list(found)


def first_run(cluster: Cluster) -> str:
    cluster.start_worker()
    code, doc = cluster.run_json("run", REFERENCE, ACCOUNTS)
    assert code == 3, doc
    return str(doc["run_id"])


def test_replay_filters_choose_the_letters(cluster: Cluster) -> None:
    run_id = first_run(cluster)
    opened = letters(cluster)
    at_read = [lt for lt in opened if lt["stage"] == "read"]
    assert {lt["error_class"] for lt in at_read} >= {"UnknownName"} and len(at_read) >= 3

    # letters written at read time are never replayed: a filter that names only them has nothing to replay
    code, nothing = cluster.run_json("dlq", "replay", "--error-class", "UnknownName")
    unknown_names = sum(1 for lt in opened if lt["error_class"] == "UnknownName")
    assert (code, nothing) == (0, {"state": "nothing to replay", "not_replayable": unknown_names, "exit_code": 0})
    plain = cluster.cli("dlq", "replay", "--error-class", "UnknownName")
    assert plain.returncode == 0
    assert plain.stdout.splitlines() == [
        f"{unknown_names} dead letter(s) failed at read time and cannot be replayed: fix the source file and run it "
        "again, or discard them", "nothing to replay: no open dead letter matches (`cutover dlq list` shows the open ones)"]
    code, nothing = cluster.run_json("dlq", "replay", "--entity", "NoSuchEntity")
    assert (code, nothing) == (0, {"state": "nothing to replay", "not_replayable": 0, "exit_code": 0})

    # one letter by id: only that record is published again, and it fails again
    ghost = next(lt for lt in opened if lt["entity"] == "Contact" and lt["value"] == "ghost_account")
    code, replay = cluster.run_json("dlq", "replay", str(ghost["id"]))
    assert code == 3, replay
    assert replay["totals"] == {"read": 1, "committed": 0, "skipped": 0, "dead": 1, "blocked": 0, "pending": 0}
    assert replay["entities"]["Contact"]["dead"] == 1

    # --outcome blocked: carol's children only; their parent is still dead, so they are blocked again
    blocked = [lt for lt in opened if lt["outcome"] == "blocked"]
    code, replay = cluster.run_json("dlq", "replay", "--outcome", "blocked")
    assert code == 3, replay
    assert replay["totals"]["read"] == len(blocked) == replay["totals"]["blocked"]

    # after the fix: the entity + error class filter takes carol (and dave, whose TaxCode is misspelt), and
    # every record blocked behind carol comes along and loads in wave order
    assert cluster.run_json("run", FIX)[0] == 0
    code, replay = cluster.run_json("dlq", "replay", "--run", run_id, "--entity", "User", "--error-class",
                                    "UnknownReference")
    assert code == 3, replay
    got = {e: (row["read"], row["committed"], row["dead"], row["blocked"]) for e, row in replay["entities"].items()}
    assert got == {"User": (2, 1, 1, 0), "Contact": (2, 2, 0, 0), "ContactEmail": (1, 1, 0, 0), "Company": (1, 1, 0, 0)}
    assert [lt["value"] for lt in letters(cluster, "--entity", "User", "--error-class", "UnknownReference")] == \
        ["residential"]
    assert {lt["state"] for lt in letters(cluster, "--state", "replayed")} == {"replayed"}
    assert len(letters(cluster, "--state", "replayed")) == 5
    # a replay packs its messages like a run: the records of a chunk travel together, a batch is not 4 records
    options = cluster.query("SELECT options FROM runs WHERE id = :r", r=replay["run_id"])[0][0]
    assert (json.loads(options) if isinstance(options, str) else options)["records_per_message"] == \
        Settings().records_per_message


def user_file(path: Path, *bill_days: int) -> str:
    path.write_text('<?xml version="1.0"?>\n<Accounts>\n'
                    + "".join(f'  <User Name="bob" Owner="admin" BillDay="{day}"/>\n' for day in bill_days)
                    + "</Accounts>\n")
    return str(path)


def bill_day(cluster: Cluster) -> int:
    [(day,)] = cluster.query("SELECT bill_day FROM accounts WHERE name = 'bob'")
    return int(day)


def test_upsert_on_run_and_on_replay(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_worker()
    assert cluster.run_json("run", REFERENCE, user_file(tmp_path / "v4.xml", 4))[0] == 0

    code, doc = cluster.run_json("run", user_file(tmp_path / "v9.xml", 9))
    assert code == 3 and doc["entities"]["User"]["dead"] == 1, doc
    [conflict] = letters(cluster)
    assert conflict["error_class"] == "Conflict" and "already exists with different content" in conflict["message"]
    assert "--upsert" in conflict["message"] + (conflict["hint"] or "")
    assert bill_day(cluster) == 4

    code, replay = cluster.run_json("dlq", "replay", "--error-class", "Conflict")
    assert code == 3 and replay["totals"]["dead"] == 1, "without --upsert the conflict stays"
    assert bill_day(cluster) == 4

    code, replay = cluster.run_json("dlq", "replay", "--error-class", "Conflict", "--upsert")
    assert code == 0, replay
    assert replay["totals"]["committed"] == 1 and bill_day(cluster) == 9
    assert letters(cluster) == [] and letters(cluster, "--state", "replayed")[0]["id"] == conflict["id"]

    code, doc = cluster.run_json("run", user_file(tmp_path / "v12.xml", 12), "--upsert")
    assert code == 0 and doc["entities"]["User"]["committed"] == 1, doc
    assert bill_day(cluster) == 12

    # runbook §11: running the original file again skips its record and does not change the row back
    code, doc = cluster.run_json("run", user_file(tmp_path / "v4.xml", 4))
    assert code == 0 and doc["entities"]["User"]["skipped"] == 1, doc
    assert bill_day(cluster) == 12

    # in one run the earlier record wins, even with --upsert: the later one is a Conflict
    code, doc = cluster.run_json("run", user_file(tmp_path / "v20-21.xml", 20, 21), "--upsert")
    assert code == 3, doc
    assert (doc["entities"]["User"]["committed"], doc["entities"]["User"]["dead"]) == (1, 1)
    assert bill_day(cluster) == 20
    [later] = letters(cluster)
    assert later["error_class"] == "Conflict" and "appears earlier in the run" in later["message"]


def test_discard_asks_marks_letters_and_releases_children_as_unknown_references(cluster: Cluster) -> None:
    run_id = first_run(cluster)
    opened = letters(cluster)
    _, before = cluster.run_json("status", run_id)

    refused = cluster.cli("dlq", "discard", "--run", run_id)  # standard input is not a terminal: no answer
    assert refused.returncode == 1 and "Aborted!" in refused.stderr, refused.stdout + refused.stderr
    declined = cluster.cli("dlq", "discard", "--run", run_id, input="n\n")
    assert declined.returncode == 0 and "discard the matching dead letters? [y/N]" in declined.stdout
    assert "discarded" not in declined.stdout
    assert letters(cluster) == opened, "nothing discarded without a yes"

    invalid = [lt for lt in opened if lt["error_class"] == "InvalidValue"]
    assert invalid
    accepted = cluster.cli("dlq", "discard", "--error-class", "InvalidValue", input="y\n")
    assert accepted.returncode == 0 and f"discarded {len(invalid)} dead letter(s)" in accepted.stdout
    assert [lt["id"] for lt in letters(cluster, "--state", "discarded")] == [lt["id"] for lt in invalid]
    assert all(lt["error_class"] != "InvalidValue" for lt in letters(cluster))
    _, after = cluster.run_json("status", run_id)
    assert after["totals"] == before["totals"], "discarded records stay dead in the run's counts"

    # discard carol's letter: her blocked children are no longer blocked by it; replayed, they are dead
    carol = next(lt for lt in opened if lt["entity"] == "User" and lt["value"] == "Commercial Plus")
    done = cluster.cli("dlq", "discard", str(carol["id"]), "--yes")
    assert done.returncode == 0 and "discarded 1 dead letter(s)" in done.stdout
    code, replay = cluster.run_json("dlq", "replay", "--outcome", "blocked")
    assert code == 3, replay
    assert replay["entities"]["Contact"]["dead"] == 2 and replay["entities"]["Company"]["dead"] == 1
    children = [lt for lt in letters(cluster, "--run", run_id) if "carol" in lt["message"]
                and lt["entity"] in ("Contact", "Company")]
    assert len(children) == 3
    assert all((lt["outcome"], lt["error_class"]) == ("dead", "UnknownReference") for lt in children), children

    # a replay of everything leaves the discarded letters alone
    code, replay = cluster.run_json("dlq", "replay")
    assert code == 3
    discarded = {lt["id"] for lt in letters(cluster, "--state", "discarded")}
    assert carol["id"] in discarded and len(discarded) == len(invalid) + 1
    assert cluster.query("SELECT count(*) FROM accounts WHERE name = 'carol'") == [(0,)]
