"""Settling staged records rewrites their rows in place on PostgreSQL (HOT updates): a worker's batch
of outcomes writes no index entries, however full the pages were when staging filled them by COPY
(migration 0022: no index on ``status``, pages filled to half)."""

from __future__ import annotations

import sqlalchemy as sa

from producer.ledger import resolve_plans
from shared.db import engine_for, session_factory, upgrade
from shared.dialects import dialect_of, table_of
from shared.schema.control import InvoicePlan, Run, StagedRecord

RECORDS = 400


def staged_row(n: int) -> dict[str, object]:
    payload = {"User": f"account-{n:05d}", "Date": "2007-01-31T00:00:00", "Debit": "29.9500", "Tax1": "1.5000",
               "Service": "Broadband 20", "Description": "monthly charge " + "x" * 200, "_plan": str(n)}
    return {"run_id": "run-hot", "dispatch_id": "run-hot", "entity": "Debit", "wave": 3, "chunk": n // 100,
            "source_file": "ledger.xml", "line": n, "col": 1, "digest": f"{n:064x}", "key": f"{n + 1:064x}",
            "natural_key": None, "payload": payload, "status": "pending", "attempts": 0}


def test_a_batch_of_outcomes_is_settled_by_hot_updates(postgres_url: str) -> None:
    upgrade(postgres_url)
    sessions = session_factory(postgres_url)
    with sessions.begin() as session:
        session.add(Run(id="run-hot", kind="run", state="running"))
    with sessions.begin() as session:  # staging: COPY, pages as full as the table allows
        ids = dialect_of(session).insert_ids(session, table_of(StagedRecord), [staged_row(n) for n in range(RECORDS)])
    with sessions.begin() as session:  # one worker batch: every record's outcome in one statement
        dialect_of(session).update_rows(session, table_of(StagedRecord), "id",
                                        [{"id": i, "status": "committed", "target_id": i * 7} for i in ids])
        updated, hot = session.execute(sa.text(
            "SELECT pg_stat_get_xact_tuples_updated(c.oid), pg_stat_get_xact_tuples_hot_updated(c.oid) "
            "FROM pg_class c WHERE c.relname = 'staged_records'")).one()
    assert updated == RECORDS
    assert hot == RECORDS, f"{hot} of {updated} updates were HOT: each of the others wrote an entry into every index"
    with sessions() as session:
        assert session.scalar(sa.select(sa.func.count()).where(StagedRecord.status == "committed")) == RECORDS
    engine_for(postgres_url).dispose()


def test_invoice_plans_get_their_sequences_by_hot_updates(postgres_url: str) -> None:
    """Staging copies plans in full pages, then gives each its sequence and name after reading
    (``resolve_plans``): with room on each page (migration 0024) the new versions stay in place."""
    upgrade(postgres_url)
    sessions = session_factory(postgres_url)
    with sessions.begin() as session:
        session.add(Run(id="run-plans", kind="run", state="staging"))
    with sessions.begin() as session:
        dialect_of(session).insert(session, table_of(InvoicePlan), [
            {"run_id": "run-plans", "plan": n, "account": f"account-{n // 3:05d}", "name": None, "closed": False,
             "printed": False, "opening": False, "close_no": None, "source_file": "ledger.xml", "line": n}
            for n in range(RECORDS)])
    with sessions.begin() as session:
        resolved = resolve_plans(session, "run-plans")
        updated, hot = session.execute(sa.text(
            "SELECT pg_stat_get_xact_tuples_updated(c.oid), pg_stat_get_xact_tuples_hot_updated(c.oid) "
            "FROM pg_class c WHERE c.relname = 'invoice_plans'")).one()
    assert resolved == updated == RECORDS
    assert hot >= RECORDS * 0.95, f"{hot} of {updated} plan updates were HOT"
