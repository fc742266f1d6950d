"""``ChildAccount`` set-based, called directly (no Celery): a batch's outcomes are, record by record,
those of each record loaded alone; a cycle made inside one batch, or by two batches at once, is
refused; an account with invoices stays where it is; a different parent is a conflict unless the
run is ``--upsert``."""

from __future__ import annotations

import base64
import os
import threading
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
from workers.plans import load_planners

from .staged import DirectLoads, staged_envelopes

USERS = ("a", "b", "c", "d", "e", "f", "x", "y")
PLACEMENTS = (
    ("b", "a"),      # committed
    ("c", "a"),      # committed
    ("a", "b"),      # a cycle with the first record of the same batch
    ("d", "d"),      # its own parent
    ("e", "ghost"),  # no such account
    ("f", "a"),      # already there (placed by other means): skipped
)


def children(*placements: tuple[str, str]) -> str:
    return "".join(f'<ChildAccount Name="{child}" Parent="{parent}"/>\n' for child, parent in placements)


class Target(DirectLoads):
    """A database with the users loaded; ChildAccount records staged run by run."""

    def __init__(self, url: str, folder: Path) -> None:
        self.url, self.folder = url, folder
        upgrade(url)
        self.sessions = session_factory(url)
        self.vault = Vault(base64.urlsafe_b64decode(base64.urlsafe_b64encode(os.urandom(32))))
        self.loaders = Loaders(load_planners(), load_all())
        users = "".join(f'<User Name="{name}" Owner="admin"/>\n' for name in USERS)
        run = self.stage("users", f'<Owner Name="admin"/>\n{users}')
        for entity in ("Owner", "User"):
            self.load(entity, self.envelopes(run, entity))

    def stage(self, name: str, body: str) -> str:
        path = self.folder / f"{name}.xml"
        path.write_text(f"<Export>\n{body}</Export>\n")
        return Stager(self.sessions, REGISTRY, self.vault, chunk_size=1000).stage(
            FORMATS.resolve([path], "engageip"), {}).run_id

    def envelopes(self, run_id: str, entity: str = "ChildAccount", **overrides: Any) -> list[Envelope]:
        return staged_envelopes(self.sessions, run_id, entity, **overrides)

    def parents(self) -> dict[str, str | None]:
        with engine_for(self.url).connect() as conn:
            rows = conn.execute(sa.text("SELECT c.name, p.name FROM accounts c LEFT JOIN accounts p ON p.id = c.parent_id"))
            return {child: parent for child, parent in rows}


@pytest.fixture
def target(database_url: str, tmp_path: Path) -> Target:
    return Target(database_url, tmp_path)


def place_f_under_a(target: Target) -> None:
    with target.sessions.begin() as session:
        session.execute(sa.text("UPDATE accounts SET parent_id = (SELECT id FROM accounts WHERE name = 'a') WHERE name = 'f'"))


def test_one_batch_places_accounts_and_refuses_what_breaks_a_rule(target: Target) -> None:
    place_f_under_a(target)
    records = target.envelopes(target.stage("children", children(*PLACEMENTS)))
    outcomes = target.load("ChildAccount", records)
    assert [outcomes[e.record_id] for e in records] == ["committed", "committed", "dead", "dead", "dead", "skipped"]
    cycle, own, ghost = (target.letter(e.record_id) for e in records[2:5])
    assert (cycle.error_class, cycle.field, cycle.value) == ("RuleViolation", "Parent", "b")
    assert "would make a cycle: a → b → a" in cycle.message
    assert (own.error_class, own.message) == ("RuleViolation", "account 'd' cannot be its own parent")
    assert (ghost.error_class, ghost.field, ghost.value) == ("UnknownReference", "Parent", "ghost")
    parents = target.parents()
    assert (parents["a"], parents["b"], parents["c"], parents["d"], parents["e"], parents["f"]) == \
        (None, "a", "a", None, None, "a")
    assert target.load("ChildAccount", records[:2]) == {records[0].record_id: "committed", records[1].record_id: "committed"}, \
        "a redelivery finds its own ledger entries"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_outcomes_of_a_batch_are_those_of_records_loaded_alone(tmp_path: Path, database_url: str) -> None:
    (tmp_path / "together").mkdir()
    (tmp_path / "alone").mkdir()
    together = Target(f"sqlite:///{tmp_path / 'together.db'}", tmp_path / "together")
    alone = Target(f"sqlite:///{tmp_path / 'alone.db'}", tmp_path / "alone")
    place_f_under_a(together)
    place_f_under_a(alone)
    batch_records = together.envelopes(together.stage("children", children(*PLACEMENTS)))
    batch = together.load("ChildAccount", batch_records)
    single: dict[int, str] = {}
    alone_records = alone.envelopes(alone.stage("children", children(*PLACEMENTS)))
    for env in alone_records:
        single.update(alone.load("ChildAccount", [env]))
    assert [batch[e.record_id] for e in batch_records] == [single[e.record_id] for e in alone_records]
    assert together.parents() == alone.parents()


def test_an_account_with_invoices_stays_where_it_is(target: Target) -> None:
    with target.sessions.begin() as session:
        session.execute(sa.text("INSERT INTO invoices (account_id, sequence, name, state, printed, opening_balance, subtotal, "
                                "tax, total, amount_paid, outstanding) SELECT id, 1, 'f-1', 'open', false, false, 0, 0, 0, 0, 0 "
                                "FROM accounts WHERE name = 'f'"))
    records = target.envelopes(target.stage("children", children(("f", "b"), ("e", "a"))))
    outcomes = target.load("ChildAccount", records)
    assert [outcomes[e.record_id] for e in records] == ["dead", "committed"]
    letter = target.letter(records[0].record_id)
    assert (letter.error_class, letter.field, letter.value) == ("RuleViolation", "Name", "f")
    assert "already has 1 invoice(s)" in letter.message
    assert (target.parents()["f"], target.parents()["e"]) == (None, "a")


def test_a_different_parent_is_a_conflict_unless_upsert(target: Target) -> None:
    first = target.envelopes(target.stage("first", children(("b", "a"))))
    assert list(target.load("ChildAccount", first).values()) == ["committed"]
    moved = target.envelopes(target.stage("moved", children(("b", "c"))))
    assert list(target.load("ChildAccount", moved).values()) == ["dead"]
    letter = target.letter(moved[0].record_id)
    assert (letter.error_class, letter.value) == ("Conflict", "b")
    assert target.parents()["b"] == "a"
    upserted = target.envelopes(target.stage("upserted", children(("b", "c"))), upsert=True)
    assert list(target.load("ChildAccount", upserted).values()) == ["committed"]
    assert target.parents()["b"] == "c"


def test_two_batches_at_once_cannot_close_a_cycle_together(target: Target) -> None:
    """Each batch alone is fine; together they would make x → y → x. The locks on both accounts
    make one wait for the other, which then sees the cycle."""
    batches = [target.envelopes(target.stage("xy", children(("x", "y")))),
               target.envelopes(target.stage("yx", children(("y", "x"))))]
    start = threading.Barrier(2)
    outcomes: dict[int, str] = {}

    def load(records: list[Envelope]) -> None:
        start.wait()
        outcomes.update(target.load("ChildAccount", records))

    threads = [threading.Thread(target=load, args=(records,)) for records in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes.values()) == ["committed", "dead"]
    parents = target.parents()
    assert (parents["x"], parents["y"]) in (("y", None), (None, "x"))
