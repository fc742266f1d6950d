"""`reconcile` merges its sides account by account as they stream from the database, on SQLite and
PostgreSQL: an account met on one side only, an account whose money is all parked, and names that
a linguistic collation would sort differently from Python must each land on their own account."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from itertools import count

import pytest
from sqlalchemy.orm import Session

from ops import reconcile as reconciling
from shared.db import engine_for, session_factory, upgrade
from shared.schema.control import Run, SourceTotal, StagedRecord
from shared.schema.ledger import Invoice, Payment, Transaction
from shared.schema.target import Account, ReferenceItem

RUN = "run-merge"
WHEN = datetime(2007, 1, 31)


class Ledger:
    """Staged records and the target rows they made, written by hand."""

    def __init__(self, session: Session) -> None:
        self.session, self.numbers = session, count(1)
        owner = ReferenceItem(kind="Owner", name="Acme")
        session.add_all([Run(id=RUN, kind="run", state="completed"), owner])
        session.flush()
        self.owner_id, self.accounts = owner.id, {}

    def account(self, name: str) -> Account:
        if name not in self.accounts:
            account = self.accounts[name] = Account(owner_id=self.owner_id, name=name)
            self.session.add(account)
            self.session.flush()
            self.session.add(Invoice(account_id=account.id, sequence=1, name=f"{name}-1"))
            self.session.flush()
        return self.accounts[name]

    def record(self, entity: str, user: str, status: str, **fields: str) -> str:
        n = next(self.numbers)
        key = f"{n:064x}"
        self.session.add(StagedRecord(run_id=RUN, dispatch_id=RUN, entity=entity, wave=4, chunk=0, source_file="l.xml",
                                      line=n, col=1, digest=key, key=key, payload={"User": user, **fields},
                                      status=status, attempts=0))
        return key

    def debit(self, user: str, amount: str) -> None:
        key = self.record("Debit", user, "committed", Debit=amount, Date="2007-01-31")
        account = self.account(user)
        invoice = self.session.query(Invoice).filter_by(account_id=account.id).one()
        self.session.add(Transaction(source_key=key, account_id=account.id, invoice_id=invoice.id, kind="debit",
                                     posted_at=WHEN, debit=Decimal(amount), amount=Decimal(amount), tax=Decimal(0)))

    def payment(self, user: str, amount: str) -> None:
        key = self.record("Payment", user, "committed", Credit=amount, Date="2007-01-31")
        self.session.add(Payment(source_key=key, record_order=next(self.numbers), account_id=self.account(user).id,
                                 received_at=WHEN, amount=Decimal(amount), auto_disburse=True, undisbursed=Decimal(amount)))

    def source(self, user: str, debits: str = "0", payments: str = "0") -> None:
        self.session.add(SourceTotal(run_id=RUN, account=user, debits=Decimal(debits), credits=Decimal(0),
                                     taxes=Decimal(0), payments=Decimal(payments)))


@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    upgrade(database_url)
    with session_factory(database_url)() as session:
        yield session
    engine_for(database_url).dispose()


def test_each_account_is_compared_with_itself_whatever_side_it_is_on(session: Session,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reconciling, "STREAMED", 2)  # several fetches per side, interleaved
    ledger = Ledger(session)
    for name, amount in (("a-b", "10.00"), ("ab", "5.00"), ("B", "1.25"), ("a b", "2.00"), ("émile", "3.00")):
        ledger.source(name, debits=amount)
        ledger.debit(name, amount)
    ledger.source("C", payments="3.00")
    ledger.payment("C", "3.00")
    ledger.source("zz", debits="7.00")  # all of it parked: a dead record explains it
    ledger.record("Debit", "zz", "dead", Debit="7.00", Date="2007-01-31")
    ledger.debit("Émile", "2.00")  # in the target, not in the source
    session.commit()

    result = reconciling.reconcile(session, RUN)
    assert [(d.account, d.metric, d.source, d.parked, d.found) for d in result.differences] == [
        ("Émile", "debits", Decimal(0), Decimal(0), Decimal("2.00"))]
    assert result.accounts == 7
    assert result.source.debits == Decimal("28.25") and result.source.payments == Decimal("3.00")
    assert result.parked.debits == Decimal("7.00")
    assert result.found.debits == Decimal("23.25") and result.found.payments == Decimal("3.00")
