"""What Flower sees: every message of a batch is reported started when the batch starts, and a
message whose record was dead-lettered ends as a failed task naming the error — received here with
Celery's own event receiver, on a real Redis, from real workers."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CASES, Cluster

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.cluster_env(CUTOVER_RECORDS_PER_MESSAGE="1")  # one record a message: a dead letter is a failed task
def test_dead_letters_are_failed_tasks_and_batches_are_started(cluster: Cluster, tmp_path: Path) -> None:
    from celery import Celery

    seen: dict[str, list[dict[str, Any]]] = {"task-started": [], "task-succeeded": [], "task-failed": []}
    app = Celery(broker=cluster.env["CUTOVER_BROKER_URL"])
    ready = threading.Event()

    def listen() -> None:
        try:
            with app.connection() as conn:
                receiver = app.events.Receiver(conn, handlers={kind: seen[kind].append for kind in seen})
                ready.set()
                receiver.capture(limit=None, timeout=None, wakeup=False)
        except Exception:  # the test's Redis goes away when the test ends
            return

    threading.Thread(target=listen, daemon=True).start()
    assert ready.wait(10)
    cluster.start_worker()
    code, doc = cluster.run_json("run", str(CASES / "engageip" / "faults-reference.xml"),
                                 str(CASES / "engageip" / "faults-accounts.xml"))
    assert code == 3
    parked_at_load = cluster.query("SELECT count(*) FROM dead_letters WHERE stage = 'load' AND attempts > 0")[0][0]
    assert parked_at_load > 0

    failed = seen["task-failed"]
    assert failed, "dead-lettered records must show as failed tasks"
    assert any(e["exception"].startswith("UnknownReference(") and "Commercial Plus" in e["exception"] for e in failed)
    started = {e["uuid"] for e in seen["task-started"]}
    finished = {e["uuid"] for e in seen["task-succeeded"] + seen["task-failed"]}
    assert finished <= started, "every reported message was first reported started"
    assert len(failed) == parked_at_load, "one failed task per record parked by a worker (one record a message)"
    assert not any("PW-" in e["exception"] for e in failed), "no secret in an event"
