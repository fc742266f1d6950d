"""Invoice plans from file order (``InvoicePlanner``), source totals, and plan sequences against the target."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from producer import ledger
from producer.ledger import InvoicePlanner, LedgerStep, Plan, resolve_plans, write_plans
from producer.readers.base import RawRecord
from shared.db import engine_for, session_factory, upgrade
from shared.errors import InvalidValue, Position, RuleViolation
from shared.money import Figures
from shared.schema.control import InvoicePlan, LedgerEntry, Run, SourceTotal, StagedRecord
from shared.schema.ledger import Invoice, Transaction
from shared.schema.target import Account, ReferenceItem

RUN = "run-1"


class Feed:
    """Gives records to a planner in file order, numbering their lines."""

    def __init__(self) -> None:
        self.planner = InvoicePlanner()
        self.file, self.line = "one.xml", 0
        self.planner.start_file()

    def next_file(self, name: str) -> None:
        self.file, self.line = name, 0
        self.planner.start_file()

    def __call__(self, entity: str, **fields: str) -> RawRecord:
        self.line += 1
        raw = RawRecord(entity, dict(fields), Position(self.file, self.line))
        self.planner.observe(raw)
        return raw

    def debit(self, user: str, amount: str = "10.00", **fields: str) -> RawRecord:
        return self("Debit", User=user, Date="2007-01-31", Debit=amount, **fields)

    def credit(self, user: str, amount: str = "1.00", **fields: str) -> RawRecord:
        return self("Credit", User=user, Date="2007-01-31", Credit=amount, **fields)

    def close(self, **fields: str) -> RawRecord:
        return self("CloseInvoice", CloseInvoice="", **fields)

    def opening(self, user: str, amount: str) -> RawRecord:
        return self("OpeningBalance", User=user, Date="2006-12-31", Amount=amount, Description="brought forward")

    def plans(self, final: bool = False) -> dict[int, Plan]:
        return {p.plan: p for p in self.planner.drain(final=final)}


def plan_of(raw: RawRecord) -> str | None:
    return raw.derived.get("_plan")


# --- which plan a line goes on ----------------------------------------------------------------------


def test_lines_of_an_account_share_its_open_plan() -> None:
    feed = Feed()
    a1, b1, a2 = feed.debit("alice"), feed.debit("bob"), feed.credit("alice")
    assert (plan_of(a1), plan_of(b1), plan_of(a2)) == ("1", "2", "1")
    assert all(r.error is None for r in (a1, b1, a2))
    assert feed.planner.drain() == [], "nothing closed yet"
    plans = feed.plans(final=True)
    assert {n: (p.account, p.closed, p.close_no) for n, p in plans.items()} == {
        1: ("alice", False, None), 2: ("bob", False, None)}
    assert (plans[1].source_file, plans[1].line) == ("one.xml", 1), "a plan remembers where it started"
    assert (plans[2].source_file, plans[2].line) == ("one.xml", 2)


def test_derived_values_are_strings_and_stay_out_of_the_fields() -> None:
    feed = Feed()
    line = feed.debit("alice")
    close = feed.close(User="alice")
    assert line.derived == {"_plan": "1"}
    assert close.derived == {"_plan": "1", "_close": "1"}
    assert "_plan" not in line.fields and "_close" not in close.fields


def test_bare_close_closes_every_account_touched_since_the_previous_close() -> None:
    feed = Feed()
    feed.debit("alice")
    feed.credit("bob")
    feed.debit("alice")
    first = feed.close()
    feed.debit("carol")
    second = feed.close()
    assert first.error is None and second.error is None
    assert first.derived == {"_close": "1"}, "a bare close names no single plan"
    assert second.derived == {"_close": "2"}
    plans = feed.plans(final=True)
    assert {n: (p.account, p.closed, p.close_no) for n, p in plans.items()} == {
        1: ("alice", True, 1), 2: ("bob", True, 1), 3: ("carol", True, 2)}
    assert not feed.planner.open


def test_bare_close_leaves_untouched_accounts_open() -> None:
    feed = Feed()
    feed.debit("dave")  # an earlier file: dave's plan stays open, untouched by the next file
    feed.next_file("two.xml")
    feed.debit("alice")
    feed.close()
    plans = feed.plans()
    assert [(p.account, p.closed) for p in plans.values()] == [("alice", True)]
    assert list(feed.planner.open) == ["dave"]
    assert feed.planner.open["dave"].closed is False


def test_close_with_user_closes_only_that_account() -> None:
    feed = Feed()
    feed.debit("alice")
    feed.debit("bob")
    close = feed.close(User="alice")
    assert close.error is None
    assert close.derived == {"_plan": "1", "_close": "1"}
    closed = feed.plans()
    assert [(p.account, p.closed, p.close_no) for p in closed.values()] == [("alice", True, 1)]
    assert list(feed.planner.open) == ["bob"] and feed.planner.open["bob"].closed is False
    bare = feed.close()
    assert bare.error is None and bare.derived == {"_close": "2"}
    assert [(p.account, p.close_no) for p in feed.planner.drain()] == [("bob", 2)], "alice is no longer 'touched'"


def test_name_override() -> None:
    feed = Feed()
    feed.debit("alice")
    feed.debit("bob")
    feed.close(User="alice", Name="January 2007")
    feed.close()
    plans = feed.plans()
    assert plans[1].name == "January 2007"
    assert plans[2].name is None, "the default name is given after reading (resolve_plans)"


def test_bare_close_with_name_names_a_single_invoice() -> None:
    feed = Feed()
    feed.debit("alice")
    close = feed.close(Name="Final bill")
    assert close.error is None
    assert [(p.account, p.name) for p in feed.planner.drain()] == [("alice", "Final bill")]


@pytest.mark.parametrize(("printed", "expected"), [({"Printed": "true"}, True), ({"Printed": "false"}, False), ({}, False)])
def test_printed_flag(printed: dict[str, str], expected: bool) -> None:
    feed = Feed()
    feed.debit("alice")
    feed.close(User="alice", **printed)
    (plan,) = feed.planner.drain()
    assert plan.closed is True and plan.printed is expected and plan.opening is False


def test_printed_flag_on_a_bare_close_marks_every_closed_plan() -> None:
    feed = Feed()
    feed.debit("alice")
    feed.debit("bob")
    feed.close(Printed="true")
    assert [(p.account, p.printed) for p in feed.planner.drain()] == [("alice", True), ("bob", True)]


def test_a_second_invoice_gets_a_new_plan() -> None:
    feed = Feed()
    first = feed.debit("alice")
    feed.close(User="alice")
    second = feed.debit("alice")
    third = feed.credit("alice")
    assert (plan_of(first), plan_of(second), plan_of(third)) == ("1", "2", "2")
    plans = feed.plans(final=True)
    assert (plans[1].closed, plans[2].closed) == (True, False)
    assert plans[2].line == 3


# --- opening balances -------------------------------------------------------------------------------


def test_opening_balance_joins_the_open_plan_and_closes_it() -> None:
    feed = Feed()
    line = feed.debit("alice")
    opening = feed.opening("alice", "39.49")
    assert opening.error is None
    assert plan_of(opening) == plan_of(line) == "1"
    assert "_close" not in opening.derived
    (plan,) = feed.planner.drain()
    assert (plan.account, plan.opening, plan.closed, plan.printed, plan.close_no) == ("alice", True, True, True, None)
    assert not feed.planner.open
    after = feed.debit("alice")
    assert plan_of(after) == "2", "the next line starts a new invoice"


def test_opening_balance_without_open_plan_makes_its_own() -> None:
    feed = Feed()
    feed.debit("bob")
    opening = feed.opening("alice", "-15.00")
    assert opening.error is None and plan_of(opening) == "2"
    (plan,) = feed.planner.drain()
    assert (plan.plan, plan.account, plan.opening, plan.closed, plan.printed) == (2, "alice", True, True, True)
    assert list(feed.planner.open) == ["bob"]


def test_bare_close_after_an_opening_balance_does_not_see_the_account() -> None:
    feed = Feed()
    feed.debit("alice")
    feed.opening("alice", "1.00")
    close = feed.close()
    assert isinstance(close.error, RuleViolation), "the opening balance already closed alice's plan"


# --- closes that cannot apply -----------------------------------------------------------------------


def test_close_for_an_account_without_open_plan_is_a_rule_violation() -> None:
    feed = Feed()
    feed.debit("alice")
    close = feed.close(User="ghost")
    assert isinstance(close.error, RuleViolation)
    assert close.error.field == "User" and close.error.value == "ghost"
    assert "'ghost'" in str(close.error)
    assert close.derived == {}
    assert list(feed.planner.open) == ["alice"] and feed.planner.drain() == []
    ok = feed.close(User="alice")
    assert ok.derived["_close"] == "1", "a refused close is not counted"


def test_closing_the_same_account_twice_is_a_rule_violation() -> None:
    feed = Feed()
    feed.debit("alice")
    feed.close(User="alice")
    again = feed.close(User="alice")
    assert isinstance(again.error, RuleViolation) and again.error.value == "alice"


def test_bare_close_that_closes_nothing_is_a_rule_violation() -> None:
    feed = Feed()
    feed.debit("alice")
    feed.close()
    again = feed.close()
    assert isinstance(again.error, RuleViolation)
    assert again.derived == {}
    first_thing = Feed().close()
    assert isinstance(first_thing.error, RuleViolation)


def test_bare_close_with_name_for_several_accounts_is_refused() -> None:
    feed = Feed()
    feed.debit("alice")
    feed.debit("bob")
    close = feed.close(Name="January")
    assert isinstance(close.error, InvalidValue)
    assert close.error.field == "Name" and close.error.value == "January"
    assert "2 invoices" in str(close.error)
    assert close.derived == {}
    assert feed.planner.drain() == [] and list(feed.planner.open) == ["alice", "bob"], "nothing was closed"
    retry = feed.close()
    assert retry.error is None and retry.derived == {"_close": "1"}
    assert [p.name for p in feed.planner.drain()] == [None, None]


def test_payment_is_not_an_invoice_line() -> None:
    feed = Feed()
    payment = feed("Payment", User="alice", Date="2007-01-10", Credit="39.49", Invoice="alice-1")
    assert payment.error is None and payment.derived == {}
    assert not feed.planner.open
    assert isinstance(feed.close().error, RuleViolation)


# --- files --------------------------------------------------------------------------------------------


def test_start_file_resets_touched_but_keeps_open_plans() -> None:
    feed = Feed()
    feed.debit("alice")
    feed.debit("bob")
    feed.next_file("two.xml")
    nothing = feed.close()
    assert isinstance(nothing.error, RuleViolation), "file 1's lines are not closed by file 2's bare close"
    feed.debit("carol")
    feed.close()
    assert [p.account for p in feed.planner.drain()] == ["carol"]
    joined = feed.debit("alice")
    assert plan_of(joined) == "1", "alice's open plan from file 1 persists"
    feed.close()
    closed = feed.planner.drain()
    assert [(p.plan, p.account, p.source_file, p.line) for p in closed] == [(1, "alice", "one.xml", 1)]
    assert list(feed.planner.open) == ["bob"]


def test_close_with_user_reaches_a_plan_opened_in_an_earlier_file() -> None:
    feed = Feed()
    feed.debit("alice")
    feed.next_file("two.xml")
    close = feed.close(User="alice")
    assert close.error is None and plan_of(close) == "1"


# --- read-time rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bulk", ["0", "-1", "0.0000"])
def test_bulk_must_be_positive(bulk: str) -> None:
    feed = Feed()
    raw = feed.credit("alice", "5.00", Bulk=bulk)
    assert isinstance(raw.error, InvalidValue)
    assert raw.error.field == "Bulk" and raw.error.value == bulk
    assert raw.derived == {} and not feed.planner.open
    assert feed.planner.totals == {}


def test_fractional_bulk_is_allowed() -> None:
    feed = Feed()
    raw = feed.credit("alice", "5.00", Bulk="0.5")
    assert raw.error is None and plan_of(raw) == "1"


def test_period_start_after_period_end() -> None:
    feed = Feed()
    raw = feed.debit("alice", PeriodStart="2007-02-01", PeriodEnd="2007-01-31")
    assert isinstance(raw.error, InvalidValue)
    assert raw.error.field == "PeriodEnd" and raw.error.value == "2007-01-31"
    assert raw.derived == {} and not feed.planner.open and feed.planner.totals == {}


@pytest.mark.parametrize(("start", "end"), [("2007-01-01", "2007-01-31"), ("2007-01-31", "2007-01-31"),
                                            ("2007-01-01T00:00:00", "2007-01-31T23:59:59")])
def test_period_in_order(start: str, end: str) -> None:
    raw = Feed().debit("alice", PeriodStart=start, PeriodEnd=end)
    assert raw.error is None and plan_of(raw) == "1"


def test_period_start_at_midnight_of_period_end_day() -> None:
    """PeriodStart="1/31/2007 12:00:00 AM" PeriodEnd="1/31/2007" is one day, not a reversed period."""
    raw = Feed().debit("alice", PeriodStart="2007-01-31T00:00:00", PeriodEnd="2007-01-31")
    assert raw.error is None


def test_amount_too_large_is_a_record_error() -> None:
    """A huge amount must dead-letter its record, not stop the whole staging."""
    feed = Feed()
    raw = feed.credit("alice", "100000000000000", Bulk="100000000000000")
    assert isinstance(raw.error, InvalidValue)


def test_records_with_an_error_are_ignored() -> None:
    feed = Feed()
    broken = RawRecord("Debit", {"User": "alice", "Date": "2007-01-31", "Debit": "10.00"}, Position("one.xml", 1),
                       error=InvalidValue("bad date", field="Date"))
    error = broken.error
    feed.planner.observe(broken)
    assert broken.error is error and broken.derived == {}
    assert not feed.planner.open and feed.planner.totals == {} and feed.planner.next_plan == 0
    feed.debit("bob")
    broken_close = RawRecord("CloseInvoice", {"CloseInvoice": "", "User": "bob"}, Position("one.xml", 3),
                             error=InvalidValue("bad", field="Printed"))
    feed.planner.observe(broken_close)
    assert broken_close.derived == {} and list(feed.planner.open) == ["bob"] and feed.planner.closes == 0


def test_other_entities_are_ignored() -> None:
    feed = Feed()
    raw = feed("User", Name="alice", Owner="Acme")
    assert raw.error is None and raw.derived == {}
    assert not feed.planner.open and feed.planner.totals == {}


# --- drain --------------------------------------------------------------------------------------------


def test_drain_returns_closed_plans_once_then_open_ones_at_the_end() -> None:
    feed = Feed()
    feed.debit("alice")
    feed.debit("bob")
    feed.debit("carol")
    feed.close(User="bob")
    assert [p.account for p in feed.planner.drain()] == ["bob"]
    assert feed.planner.drain() == [], "a plan is drained once"
    feed.close(User="carol")
    final = feed.planner.drain(final=True)
    assert [(p.account, p.closed) for p in final] == [("carol", True), ("alice", False)], "closed first, then open"
    assert feed.planner.drain(final=True) == [] and not feed.planner.open


def test_plan_row() -> None:
    feed = Feed()
    feed.debit("alice")
    feed.close(User="alice", Name="Jan", Printed="true")
    (plan,) = feed.planner.drain()
    assert plan.row(RUN) == {"run_id": RUN, "plan": 1, "account": "alice", "name": "Jan", "closed": True, "printed": True,
                             "opening": False, "close_no": 1, "source_file": "one.xml", "line": 1}


# --- source totals --------------------------------------------------------------------------------------


def test_source_totals_per_account() -> None:
    feed = Feed()
    feed.debit("alice", "29.95", Credit="2.00", Tax1="1.50", Tax2="2.40", Tax3="0.10", Tax4="0.01")
    feed.debit("alice", "5.00", Tax1="0.25")
    feed.credit("alice", "3.3333", Bulk="3")
    feed.credit("alice", "1.00")
    feed.close()
    feed.opening("alice", "39.49")
    feed("Payment", User="alice", Date="2007-01-10", Credit="20.00")
    feed("Payment", User="alice", Date="2007-01-11", Credit="0.50", Invoice="alice-1")
    feed.opening("bob", "-15.00")
    feed.credit("bob", "0.0005", Bulk="0.5")
    assert feed.planner.totals == {
        "alice": Figures(debits=Decimal("74.44"), credits=Decimal("12.9999"), taxes=Decimal("4.26"), payments=Decimal("20.50")),
        "bob": Figures(credits=Decimal("15.0003")),
    }


def test_refused_records_are_not_counted() -> None:
    feed = Feed()
    feed.debit("alice", "10.00")
    feed.credit("alice", "99.00", Bulk="0")
    feed.debit("alice", "50.00", PeriodStart="2007-02-01", PeriodEnd="2007-01-01")
    assert feed.planner.totals == {"alice": Figures(debits=Decimal("10.00"))}


# --- resolve_plans: sequences against the target ------------------------------------------------------


@dataclass
class Target:
    """A throwaway SQLite database with one staging run."""

    url: str
    sf: sessionmaker[Session]
    owner_id: int

    def account(self, name: str, invoices: Sequence[tuple[int, str, str]] = ()) -> int:
        """An account with invoices given as (sequence, name, state)."""
        with self.sf.begin() as session:
            account = Account(owner_id=self.owner_id, name=name)
            session.add(account)
            session.flush()
            for sequence, invoice_name, state in invoices:
                session.add(Invoice(account_id=account.id, sequence=sequence, name=invoice_name, state=state))
            return account.id

    def plans(self, *plans: Plan) -> None:
        with self.sf.begin() as session:
            write_plans(session, RUN, list(plans))

    def resolve(self) -> tuple[int, dict[int, tuple[str, int | None, str | None]]]:
        with self.sf.begin() as session:
            count = resolve_plans(session, RUN)
        with self.sf() as session:
            rows = session.scalars(select(InvoicePlan).where(InvoicePlan.run_id == RUN)).all()
            return count, {r.plan: (r.account, r.sequence, r.name) for r in rows}


@pytest.fixture
def target(database_url: str) -> Iterator[Target]:
    url = database_url
    upgrade(url)
    sf = session_factory(url)
    with sf.begin() as session:
        session.add(Run(id=RUN, kind="run", state="staging"))
        owner = ReferenceItem(kind="Owner", name="Acme")
        session.add(owner)
        session.flush()
        owner_id = owner.id
    yield Target(url, sf, owner_id)
    engine_for(url).dispose()


def plan(number: int, account: str, name: str | None = None) -> Plan:
    return Plan(number, account, "ledger.xml", number, name=name, closed=True, close_no=number)


def test_new_accounts_count_from_one_in_plan_order(target: Target) -> None:
    target.account("alice")
    target.plans(plan(1, "alice"), plan(2, "bob"), plan(3, "alice"), plan(4, "alice"), plan(5, "bob"))
    count, resolved = target.resolve()
    assert count == 5
    assert resolved == {1: ("alice", 1, "alice-1"), 2: ("bob", 1, "bob-1"), 3: ("alice", 2, "alice-2"),
                        4: ("alice", 3, "alice-3"), 5: ("bob", 2, "bob-2")}


def test_plan_order_not_insert_order(target: Target) -> None:
    target.plans(plan(7, "carol"), plan(3, "carol"))
    _, resolved = target.resolve()
    assert resolved == {3: ("carol", 1, "carol-1"), 7: ("carol", 2, "carol-2")}


def test_existing_invoices_are_counted_on(target: Target) -> None:
    target.account("alice", [(1, "alice-1", "closed"), (2, "alice-2", "closed"), (3, "Old March", "closed")])
    target.plans(plan(1, "alice"), plan(2, "alice"))
    _, resolved = target.resolve()
    assert resolved == {1: ("alice", 4, "alice-4"), 2: ("alice", 5, "alice-5")}


def test_first_plan_continues_an_open_invoice(target: Target) -> None:
    target.account("alice", [(1, "alice-1", "closed"), (2, "February", "open")])
    target.account("bob", [(1, "bob-1", "closed")])
    target.plans(plan(1, "bob"), plan(2, "alice"), plan(3, "alice"), plan(4, "alice"))
    _, resolved = target.resolve()
    assert resolved == {1: ("bob", 2, "bob-2"), 2: ("alice", 2, "February"), 3: ("alice", 3, "alice-3"),
                        4: ("alice", 4, "alice-4")}


def test_name_override_is_kept(target: Target) -> None:
    target.account("alice", [(1, "alice-1", "closed")])
    target.account("dave", [(1, "dave-1", "open")])
    target.plans(plan(1, "alice", "Spring"), plan(2, "alice"), plan(3, "bob", "Welcome"), plan(4, "dave", "Renamed"))
    _, resolved = target.resolve()
    assert resolved == {1: ("alice", 2, "Spring"), 2: ("alice", 3, "alice-3"), 3: ("bob", 1, "Welcome"),
                        4: ("dave", 1, "Renamed")}


def test_planner_output_resolves(target: Target) -> None:
    """From records to sequences: an opening balance counts as an invoice of its account."""
    target.account("alice", [(1, "alice-1", "closed")])
    feed = Feed()
    feed.opening("bob", "12.00")
    feed.debit("alice")
    feed.debit("bob")
    feed.close()
    feed.debit("alice")
    target.plans(*feed.planner.drain(final=True))
    count, resolved = target.resolve()
    assert count == 4
    assert resolved == {1: ("bob", 1, "bob-1"), 2: ("alice", 2, "alice-2"), 3: ("bob", 2, "bob-2"), 4: ("alice", 3, "alice-3")}


def test_plan_loaded_before_keeps_its_invoice(target: Target) -> None:
    """The same file run again: a plan whose line is already in the ledger keeps that line's invoice,
    and the account's other plans count on without taking it over."""
    account_id = target.account("alice", [(1, "alice-1", "open")])
    with target.sf.begin() as session:
        invoice_id = session.scalars(select(Invoice.id).where(Invoice.account_id == account_id)).one()
        tx = Transaction(source_key="k1", account_id=account_id, invoice_id=invoice_id, kind="debit",
                         posted_at=datetime(2007, 1, 31), debit=Decimal("10"), amount=Decimal("10"), tax=Decimal("0"))
        session.add(tx)
        session.flush()
        record = StagedRecord(run_id=RUN, dispatch_id=RUN, entity="Debit", wave=1, chunk=0, source_file="ledger.xml",
                              line=1, digest="d1", key="k1", payload={"User": "alice", "Debit": "10", "_plan": "1"})
        session.add(record)
        session.flush()
        session.add(LedgerEntry(key="k1", entity="Debit", digest="d1", target_id=tx.id, run_id="run-0", record_id=record.id))
    target.plans(plan(1, "alice"), plan(2, "alice"))
    _, resolved = target.resolve()
    assert resolved == {1: ("alice", 1, "alice-1"), 2: ("alice", 2, "alice-2")}


def test_nothing_to_resolve(target: Target) -> None:
    assert target.resolve() == (0, {})


def test_plans_resolve_the_same_when_updated_a_slice_at_a_time(target: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    """Plans stream in account order and are updated a slice at a time while the stream is open."""
    monkeypatch.setattr(ledger, "PLANS_AT_ONCE", 2)
    target.account("alice", [(1, "alice-1", "closed"), (2, "February", "open")])
    target.plans(plan(1, "bob"), plan(2, "alice"), plan(3, "alice"), plan(4, "carol", "Welcome"), plan(5, "alice"),
                 plan(6, "bob"), plan(7, "carol"))
    count, resolved = target.resolve()
    assert count == 7
    assert resolved == {1: ("bob", 1, "bob-1"), 2: ("alice", 2, "February"), 3: ("alice", 3, "alice-3"),
                        4: ("carol", 1, "Welcome"), 5: ("alice", 4, "alice-4"), 6: ("bob", 2, "bob-2"),
                        7: ("carol", 2, "carol-2")}


def test_source_totals_are_written_batch_by_batch_and_add_up(target: Target) -> None:
    """An account's money met in several batches ends in one row with the sum; nothing waits in memory."""
    step = LedgerStep()
    step.start_file(Path("ledger.xml"))
    line = 0

    def observe(entity: str, **fields: str) -> None:
        nonlocal line
        line += 1
        step.observe(RawRecord(entity, dict(fields), Position("ledger.xml", line)))

    def flush(final: bool = False) -> None:
        write = step.flush(final)
        if write is not None:
            with target.sf.begin() as session:
                write(session, RUN)

    observe("Debit", User="alice", Date="2007-01-31", Debit="10.00", Tax1="1.50")
    observe("Payment", User="bob", Date="2007-01-31", Credit="4.00")
    flush()
    assert step.planner.totals == {}
    observe("Debit", User="alice", Date="2007-02-28", Debit="2.5000")
    observe("Credit", User="alice", Date="2007-02-28", Credit="1.00", Bulk="3")
    observe("Debit", User="carol", Date="2007-02-28", Debit="7.00")
    flush()
    observe("Payment", User="alice", Date="2007-03-01", Credit="0.25")
    flush(final=True)
    with target.sf() as session:
        rows = {t.account: Figures(t.debits, t.credits, t.taxes, t.payments)
                for t in session.scalars(select(SourceTotal).where(SourceTotal.run_id == RUN))}
    assert rows == {
        "alice": Figures(debits=Decimal("12.50"), credits=Decimal("3.00"), taxes=Decimal("1.50"), payments=Decimal("0.25")),
        "bob": Figures(payments=Decimal("4.00")),
        "carol": Figures(debits=Decimal("7.00")),
    }
