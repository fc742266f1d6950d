"""Packed messages (`--records-per-message`) on real Redis, real workers, SQLite and PostgreSQL: the
same per-record outcomes, dead letters and replay as one message per record, in fewer messages."""

from __future__ import annotations

import re

import pytest

from tests.conftest import Cluster
from tests.integration.test_pipeline import ACCOUNTS, FIRST_RUN, FIX, REFERENCE, assert_balanced, counts

pytestmark = pytest.mark.slow

BATCH_LINE = re.compile(r"cutover\.worker: (\w+): (\d+) message\(s\), (\d+) record\(s\) loaded")


def _letters(cluster: Cluster) -> list[tuple[str, str, str | None, str | None]]:
    return sorted(cluster.query("SELECT entity, error_class, field, value FROM dead_letters WHERE outcome = 'dead'"))


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_packed_messages_keep_per_record_outcomes(cluster: Cluster) -> None:
    cluster.start_worker()
    code, doc = cluster.run_json("run", REFERENCE, ACCOUNTS, "--records-per-message", "3")
    assert code == 3, doc  # dead letters were written
    assert counts(doc) == FIRST_RUN
    assert_balanced(doc)

    # The good records of a message committed beside the bad ones, each bad one parked alone.
    assert cluster.query("SELECT name FROM accounts ORDER BY name") == [("alice",), ("bob",)]
    assert [(entity, cls) for entity, cls, _, _ in _letters(cluster) if entity == "User"] == sorted(
        [("User", "Conflict"), ("User", "InvalidValue"), ("User", "InvalidValue"), ("User", "UnknownReference"),
         ("User", "UnknownReference")])

    # Messages really carried several records.
    batches = [tuple(map(int, m.group(2, 3))) for m in BATCH_LINE.finditer(cluster.log.read_text())]
    assert batches, "the workers logged no batch"
    assert any(records > messages for messages, records in batches), batches

    # Replay after the fix releases what was blocked, exactly as with one record per message.
    run_id = doc["run_id"]
    assert cluster.run_json("run", FIX)[0] == 0
    code, replay = cluster.run_json("dlq", "replay", "--run", run_id)
    assert replay["state"] == "completed"
    assert code == 3, "the letters that fail again keep exit status 3"
    assert replay["totals"]["blocked"] == 0
    _, after = cluster.run_json("status", run_id)
    assert counts(after)["User"] == (8, 3, 1, 4, 0)
    assert counts(after)["Contact"] == (6, 4, 0, 2, 0)
    assert_balanced(after)
