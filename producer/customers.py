"""Customer ids for iteras customers the source gave none.

The seed: "New customers will start from the highest ID in the database." The producer settles
them after reading, in file order, from the highest of the database and of every id the run
imports, so no worker race decides who gets which id and no imported id is taken first. A customer
loaded by an earlier run of the same file keeps the id it got then (its idempotency key is in the
ledger), so a re-run assigns nothing new."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from producer.readers.base import RawRecord
from producer.steps import StagingStep
from shared.derived import ASSIGNED_ID
from shared.schema.control import LedgerEntry, StagedRecord
from shared.schema.subscriptions import Customer

CUSTOMER = "Customer"
_KEYS_PER_QUERY = 1000


def highest_given_id(raw: RawRecord, highest: int) -> int:
    """Fold one read record into the highest customer id the run imports."""
    if raw.entity == CUSTOMER and raw.error is None and raw.fields.get("id"):
        return max(highest, int(raw.fields["id"]))
    return highest


class CustomerIdStep(StagingStep):
    """iteras's staging step: the highest id the run imports, then ids for the customers without one."""

    highest = 0

    def observe(self, raw: RawRecord) -> None:
        self.highest = highest_given_id(raw, self.highest)

    def settle(self, session: Session, run_id: str) -> None:
        assign_customer_ids(session, run_id, self.highest)


def assign_customer_ids(session: Session, run_id: str, highest_in_run: int) -> int:
    """Give every pending id-less customer of the run its id; returns how many got a new one."""
    records = session.execute(
        select(StagedRecord.id, StagedRecord.key, StagedRecord.payload)
        .where(StagedRecord.run_id == run_id, StagedRecord.entity == CUSTOMER, StagedRecord.status == "pending",
               StagedRecord.natural_key.is_(None))
        .order_by(StagedRecord.id)
    ).all()
    if not records:
        return 0
    earlier = _loaded_before(session, [key for _, key, _ in records])
    next_id = max(session.scalar(select(func.max(Customer.id))) or 0, highest_in_run)
    changes: list[dict[str, Any]] = []
    assigned = 0
    for record_id, key, payload in records:
        customer_id = earlier.get(key)
        if customer_id is None:
            next_id += 1
            assigned += 1
            customer_id = next_id
        changes.append({"id": record_id, "payload": {**payload, ASSIGNED_ID: str(customer_id)}})
    session.execute(update(StagedRecord), changes)  # bulk UPDATE by primary key
    return assigned


def _loaded_before(session: Session, keys: Sequence[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for start in range(0, len(keys), _KEYS_PER_QUERY):
        batch = keys[start:start + _KEYS_PER_QUERY]
        for key, target_id in session.execute(select(LedgerEntry.key, LedgerEntry.target_id)
                                              .where(LedgerEntry.key.in_(batch), LedgerEntry.entity == CUSTOMER)):
            if target_id is not None:
                out[key] = int(target_id)
    return out
