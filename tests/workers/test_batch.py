"""The one record path, called directly (no Celery): a batch's outcomes are, record by record, what
loading each record alone gives; a bad record fails alone; a row written meanwhile by a concurrent
writer is found, not duplicated; ``--upsert`` updates; a value too long for its column fails that
record alone, naming the field, its length and the limit."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from producer.formats import FORMATS
from producer.staging import Stager
from shared.db import engine_for, session_factory, upgrade
from shared.entities import REGISTRY
from shared.envelope import Envelope
from shared.vault import Vault
from workers.batch import Loaders
from workers.loaders import load_all
from workers.plans import PLANNERS, load_planners

from .staged import DirectLoads, staged_envelopes

USERS = 12
BAD = 5  # the record in the middle of the batch with an unknown TaxCode


def write_export(folder: Path) -> list[Path]:
    reference = folder / "reference.xml"
    reference.write_text('<Export>\n<Owner Name="admin"/>\n<TaxCode Name="Residential" Rate1="0.05"/>\n'
                         '<ContactType Name="Billing Contact"/>\n</Export>\n')
    accounts = folder / "accounts.xml"
    users = []
    for i in range(USERS):
        tax = "Nowhere" if i == BAD else "Residential"
        users.append(f'<User Name="acct{i:03d}" Owner="admin" TaxCode="{tax}" BillDay="{i % 28 + 1}"/>')
    accounts.write_text("<Export>\n" + "\n".join(users) + "\n</Export>\n")
    return [reference, accounts]


class Target(DirectLoads):
    """A migrated database: reference data loaded, the users staged and waiting."""

    def __init__(self, url: str, folder: Path, preload: tuple[str, ...] | None = None) -> None:
        self.url, self.folder = url, folder
        upgrade(url)
        self.sessions = session_factory(url)
        self.vault = Vault(base64.urlsafe_b64decode(base64.urlsafe_b64encode(os.urandom(32))))
        self.loaders = Loaders(load_planners(), load_all())
        staged = Stager(self.sessions, REGISTRY, self.vault, chunk_size=1000).stage(
            FORMATS.resolve(write_export(folder), "engageip"), {})
        self.run_id = staged.run_id
        for entity in ("Owner", "TaxCode", "ContactType") if preload is None else preload:
            self.load(entity, self.envelopes(entity))

    def envelopes(self, entity: str, **overrides: Any) -> list[Envelope]:
        return staged_envelopes(self.sessions, self.run_id, entity, **overrides)

    def query(self, sql: str, **params: Any) -> list[Any]:
        with engine_for(self.url).connect() as conn:
            return list(conn.execute(sa.text(sql), params).all())


@pytest.fixture
def target(database_url: str, tmp_path: Path) -> Target:
    return Target(database_url, tmp_path)


def test_a_bad_record_in_the_middle_fails_alone(target: Target) -> None:
    users = target.envelopes("User")
    outcomes = target.load("User", users)
    assert [outcomes[e.record_id] for e in users] == ["committed"] * BAD + ["dead"] + ["committed"] * (USERS - BAD - 1)
    letter = target.letter(users[BAD].record_id)
    assert (letter.error_class, letter.field, letter.value) == ("UnknownReference", "TaxCode", "Nowhere")
    assert target.query("SELECT count(*) FROM accounts") == [(USERS - 1,)]
    assert target.query("SELECT count(*) FROM ledger WHERE entity = 'User'") == [(USERS - 1,)]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_outcomes_of_a_batch_are_those_of_records_loaded_alone(tmp_path: Path, database_url: str) -> None:
    (tmp_path / "together").mkdir()
    (tmp_path / "alone").mkdir()
    together = Target(f"sqlite:///{tmp_path / 'together.db'}", tmp_path / "together")
    alone = Target(f"sqlite:///{tmp_path / 'alone.db'}", tmp_path / "alone")
    users = together.envelopes("User")
    batch = together.load("User", users)
    single: dict[int, str] = {}
    for env in alone.envelopes("User"):
        single.update(alone.load("User", [env]))  # a batch of one
    assert [batch[e.record_id] for e in users] == [single[e.record_id] for e in alone.envelopes("User")]
    assert "dead" in batch.values() and "committed" in batch.values()
    assert together.query("SELECT name, tax_code_id IS NULL, bill_day FROM accounts ORDER BY name") == \
        alone.query("SELECT name, tax_code_id IS NULL, bill_day FROM accounts ORDER BY name")


def test_a_batch_of_one(target: Target) -> None:
    users = target.envelopes("User")
    assert target.load("User", users[:1]) == {users[0].record_id: "committed"}
    assert target.load("User", users[BAD:BAD + 1]) == {users[BAD].record_id: "dead"}
    assert target.load("User", users[:1]) == {users[0].record_id: "committed"}, "a redelivery changes nothing"
    assert target.query("SELECT count(*) FROM accounts") == [(1,)]


def test_a_planner_with_records_at_once_loads_its_batch_in_that_many_a_transaction(
        target: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    """Closing invoices holds many rows a record: its planner caps the records of a transaction."""
    monkeypatch.setattr(PLANNERS["User"], "records_at_once", 5)
    commits: list[int] = []

    def count(_conn: Any) -> None:
        commits.append(1)

    engine = engine_for(target.url)
    users = target.envelopes("User")
    sa.event.listen(engine, "commit", count)
    try:
        outcomes = target.load("User", users)
    finally:
        sa.event.remove(engine, "commit", count)
    assert [outcomes[u.record_id] for u in users] == ["dead" if i == BAD else "committed" for i in range(USERS)]
    assert len(commits) == -(-USERS // 5), "a transaction for each five records"
    assert target.query("SELECT count(*) FROM accounts") == [(USERS - 1,)]


@pytest.mark.parametrize("entity", ["Owner", "User"])  # the record-by-record path and a planner's
def test_a_record_delivered_twice_in_one_batch_is_committed_once(tmp_path: Path, entity: str) -> None:
    """The sweeper published the record again while its first message was still on its way."""
    target = Target(f"sqlite:///{tmp_path / 'twice.db'}", tmp_path, preload=() if entity == "Owner" else None)
    envelopes = target.envelopes(entity)[:2]
    twice = envelopes[0]
    outcomes = target.load(entity, [twice, *envelopes[1:], target.envelopes(entity)[0]])
    assert outcomes == {env.record_id: "committed" for env in envelopes}
    assert target.query("SELECT status FROM staged_records WHERE id = :i", i=twice.record_id) == [("committed",)]
    assert target.query("SELECT count(*) FROM ledger WHERE record_id = :i", i=twice.record_id) == [(1,)]


def test_upsert_updates_a_row_found_with_different_content(target: Target) -> None:
    users = target.envelopes("User")
    target.load("User", users[:1])
    changed = users[0]
    changed.fields["DisableReason"] = "moved away"
    changed.key, changed.digest = "different-content-key", "different-digest"
    assert target.load("User", [changed]) == {changed.record_id: "dead"}
    assert target.letter(changed.record_id).error_class == "Conflict"
    changed.upsert, changed.key = True, "different-content-key-2"
    assert target.load("User", [changed]) == {changed.record_id: "committed"}
    assert target.query("SELECT disable_reason FROM accounts WHERE name = 'acct000'") == [("moved away",)]


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_a_value_too_long_for_its_column_fails_alone_at_write(target: Target) -> None:
    users = target.envelopes("User")
    users[2].fields["DisableReason"] = "x" * 300  # past the producer's check: the writer must catch it
    outcomes = target.load("User", users)
    assert outcomes[users[2].record_id] == "dead"
    assert sum(1 for o in outcomes.values() if o == "committed") == USERS - 2
    letter = target.letter(users[2].record_id)
    assert letter.error_class == "InvalidValue" and letter.field == "DisableReason"
    assert "300" in letter.message and "255" in letter.message and "accounts.disable_reason" in letter.message


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_row_written_meanwhile_by_a_concurrent_writer_is_found_not_duplicated(target: Target) -> None:
    """Between the batch's lookups and its write, another writer commits an account with the key of
    one of its records: the batch's insert clashes, and the record is looked at again."""
    users = target.envelopes("User")
    planner = PLANNERS["User"]
    original = planner.prefetch

    def prefetch_then_a_concurrent_write(records: Any, batch: Any) -> None:
        original(records, batch)
        if not hasattr(prefetch_then_a_concurrent_write, "done"):
            prefetch_then_a_concurrent_write.done = True  # type: ignore[attr-defined]
            owner = target.query("SELECT id FROM reference_items WHERE kind = 'Owner' AND name = 'admin'")[0][0]
            tax = target.query("SELECT id FROM reference_items WHERE kind = 'TaxCode' AND name = 'Residential'")[0][0]
            with engine_for(target.url).begin() as conn:  # another connection, committed at once
                conn.execute(sa.text("INSERT INTO accounts (owner_id, name, tax_code_id, bill_day) "
                                     "VALUES (:o, 'acct003', :t, 4)"), {"o": owner, "t": tax})

    planner.prefetch = prefetch_then_a_concurrent_write  # type: ignore[method-assign]
    try:
        outcomes = target.load("User", users)
    finally:
        planner.prefetch = original  # type: ignore[method-assign]
    assert outcomes[users[3].record_id] == "skipped", "the same content, written meanwhile"
    assert target.query("SELECT count(*) FROM accounts WHERE name = 'acct003'") == [(1,)]
    assert sum(1 for o in outcomes.values() if o == "committed") == USERS - 2
