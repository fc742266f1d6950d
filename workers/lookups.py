"""What a batch needs from the target, fetched once per batch: one query per kind of thing the
batch's records name (reference items, accounts, contacts, contact points, invoice plans, invoices),
asked for by the planners before any record is planned (:meth:`Planner.prefetch`), then read from
memory while each record is planned. A miss is explained the way a record error needs it — exact
names, case-sensitive, a near-miss hint, or *blocked* when the missing parent waits in the
dead-letter store — with a query of its own, only for the misses. Nothing outlives the batch: a
database recreated under a running worker must never be read through ids it no longer has."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from shared.dialects import dialect_of
from shared.envelope import natural_key_text, show_key
from shared.errors import Blocked, RuleViolation, UnknownReference
from shared.hints import hint_for
from shared.money import TAX_SLOTS
from shared.schema.control import DeadLetter, InvoicePlan, LedgerEntry
from shared.schema.ledger import Invoice
from shared.schema.target import Account, Contact, ContactPoint, ReferenceItem

HINT_CANDIDATES = 2000
LISTED_NAMES = 12
IN_CHUNK = 1000
"""Values per ``IN (…)``: well under every database's bound-parameter limit."""

@dataclass(frozen=True)
class AccountRow:
    id: int
    name: str
    owner_id: int | None
    parent_id: int | None
    tax_code_id: int | None


@dataclass(frozen=True)
class ContactRow:
    id: int
    account_id: int
    name: str


@dataclass(frozen=True)
class PlanRow:
    """An invoice plan as a batch reads it (``InvoicePlan``'s columns that decide an invoice), a plain
    row: a ledger batch reads thousands, and ORM objects cost more to build than the query to run."""

    run_id: str
    plan: int
    account: str
    name: str | None
    sequence: int | None
    closed: bool
    printed: bool
    opening: bool
    close_no: int | None


PLAN_COLUMNS = (InvoicePlan.run_id, InvoicePlan.plan, InvoicePlan.account, InvoicePlan.name, InvoicePlan.sequence,
                InvoicePlan.closed, InvoicePlan.printed, InvoicePlan.opening, InvoicePlan.close_no)


def latest_load(entity: str, natural_key: str) -> Select[LedgerEntry]:
    """The ledger entry of the record that last loaded this natural key (what content made the row)."""
    return (select(LedgerEntry).where(LedgerEntry.entity == entity, LedgerEntry.natural_key == natural_key)
            .order_by(LedgerEntry.committed_at.desc()).limit(1))


def chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), IN_CHUNK):
        yield values[start:start + IN_CHUNK]


class Lookups:
    """One batch transaction's view of the target. Fetch with ``want_*`` (one query for all the
    names given, nothing for what is already known), read with the accessors."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.dialect = dialect_of(session)
        self.ref_ids: dict[tuple[str, str], int] = {}
        """(kind, name) → id of the reference items asked for."""
        self.accounts: dict[str, list[AccountRow]] = {}
        self._accounts_asked: set[str] = set()
        self.contacts: dict[tuple[int, str], ContactRow] = {}
        self._contacts_of: set[int] = set()
        self.points: dict[tuple[int, int], tuple[int, str, int | None]] = {}
        """(contact id, point type id) → (point id, value, contact type id)."""
        self._points_of: set[int] = set()
        self.plans: dict[tuple[str, int], PlanRow] = {}
        self.tax_rates: dict[int, dict[int, Decimal]] = {}

    # -- reference items ---------------------------------------------------------------------

    def want_refs(self, kind: str, names: Iterable[str | None]) -> None:
        wanted = sorted({n for n in names if n and (kind, n) not in self.ref_ids})
        for part in chunks(wanted):
            for name, item_id in self.session.execute(select(ReferenceItem.name, ReferenceItem.id).where(
                    ReferenceItem.kind == kind, self.dialect.any_of(ReferenceItem.name, part))):
                self.ref_ids[(kind, name)] = item_id

    def ref(self, kind: str, name: str, field: str) -> int:
        """The id of reference item ``kind`` ``name`` (asked for by ``want_refs``)."""
        found = self.ref_ids.get((kind, name))
        if found is not None:
            return found
        found = self.session.scalar(select(ReferenceItem.id).where(ReferenceItem.kind == kind, ReferenceItem.name == name))
        if found is not None:
            self.ref_ids[(kind, name)] = found
            return found
        self.raise_if_parked(kind, name)
        names = self.session.scalars(select(ReferenceItem.name).where(ReferenceItem.kind == kind).limit(HINT_CANDIDATES)).all()
        raise UnknownReference(f"{kind} {name!r} not found", field=field, value=name,
                               hint=hint_for(name, names) or _configured(kind, names))

    def optional_ref(self, kind: str, name: str | None, field: str) -> int | None:
        return self.ref(kind, name, field) if name else None

    def want_tax_rates(self, tax_code_ids: Iterable[int | None]) -> None:
        wanted = sorted({i for i in tax_code_ids if i is not None and i not in self.tax_rates})
        for part in chunks(wanted):
            for item_id, attributes in self.session.execute(select(ReferenceItem.id, ReferenceItem.attributes)
                                                            .where(self.dialect.any_of(ReferenceItem.id, part))):
                self.tax_rates[item_id] = {i: Decimal(attributes[f"Rate{i}"]) for i in TAX_SLOTS
                                           if (attributes or {}).get(f"Rate{i}")}

    # -- accounts and contacts ---------------------------------------------------------------

    def want_accounts(self, names: Iterable[str | None]) -> None:
        wanted = sorted({n for n in names if n and n not in self._accounts_asked})
        self._accounts_asked.update(wanted)
        for part in chunks(wanted):
            for row in self.session.execute(select(Account.id, Account.name, Account.owner_id, Account.parent_id,
                                                   Account.tax_code_id).where(self.dialect.any_of(Account.name, part))):
                self.accounts.setdefault(row.name, []).append(AccountRow(*row))

    def add_account(self, row: AccountRow) -> None:
        """An account this batch has just written, so later records of the batch find it."""
        self.accounts.setdefault(row.name, []).append(row)

    def account(self, name: str, field: str) -> AccountRow:
        """The one account named ``name`` (asked for by ``want_accounts``)."""
        found = self.accounts.get(name, [])
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise RuleViolation(f"account name {name!r} exists under more than one Owner", field=field, value=name,
                                hint="account references must be unique names")
        self.raise_if_parked("User", name)
        near = self.session.scalars(select(Account.name).where(func.lower(Account.name) == name.lower()).limit(1)).all()
        raise UnknownReference(f"account (User) {name!r} not found", field=field, value=name,
                               hint=hint_for(name, near) or "load the User first, in this run or an earlier one")

    def want_contacts(self, account_ids: Iterable[int]) -> None:
        wanted = sorted(set(account_ids) - self._contacts_of)
        self._contacts_of.update(wanted)
        for part in chunks(wanted):
            for row in self.session.execute(select(Contact.id, Contact.account_id, Contact.name)
                                            .where(self.dialect.any_of(Contact.account_id, part))):
                self.contacts[(row.account_id, row.name)] = ContactRow(*row)

    def add_contact(self, row: ContactRow) -> None:
        self.contacts[(row.account_id, row.name)] = row

    def contact(self, user: str, name: str, name_field: str = "ContactName") -> ContactRow:
        """Contact ``name`` of account ``user`` (accounts and their contacts asked for first)."""
        accounts = self.accounts.get(user, [])
        for account in accounts:
            found = self.contacts.get((account.id, name))
            if found is not None:
                return found
        self.raise_if_parked("Contact", natural_key_text({"User": user, "ContactName": name}, ("User", "ContactName")))
        if not accounts:
            self.account(user, "User")  # raises the account-level error (blocked or unknown)
        names = self.session.scalars(select(Contact.name).where(Contact.account_id.in_([a.id for a in accounts]))
                                     .limit(HINT_CANDIDATES)).all()
        raise UnknownReference(f"contact {name!r} of account {user!r} not found", field=name_field, value=name,
                               hint=hint_for(name, names) or "the contact must exist (load its Contact first)")

    def contact_by_id(self, contact_id: int) -> ContactRow:
        row = self.session.execute(select(Contact.id, Contact.account_id, Contact.name).where(Contact.id == contact_id)).first()
        if row is None:
            raise UnknownReference(f"contact id {contact_id} not found", field="ContactID", value=str(contact_id))
        return ContactRow(*row)

    def want_points(self, contact_ids: Iterable[int]) -> None:
        wanted = sorted(set(contact_ids) - self._points_of)
        self._points_of.update(wanted)
        for part in chunks(wanted):
            for row in self.session.execute(select(ContactPoint.id, ContactPoint.contact_id, ContactPoint.point_type_id,
                                                   ContactPoint.value, ContactPoint.contact_type_id)
                                            .where(self.dialect.any_of(ContactPoint.contact_id, part))):
                self.points[(row.contact_id, row.point_type_id)] = (row.id, row.value, row.contact_type_id)

    # -- the ledger -------------------------------------------------------------------------

    def want_plans(self, keys: Iterable[tuple[str, int]]) -> None:
        """Invoice plans by (run, plan number): one query per run."""
        by_run: dict[str, set[int]] = {}
        for run_id, number in keys:
            if (run_id, number) not in self.plans:
                by_run.setdefault(run_id, set()).add(number)
        for run_id, numbers in by_run.items():
            for part in chunks(sorted(numbers)):
                query = select(*PLAN_COLUMNS).where(InvoicePlan.run_id == run_id, self.dialect.any_of(InvoicePlan.plan, part))
                for row in self.session.connection().execute(query):
                    self.plans[(row[0], row[1])] = PlanRow(*row)

    def close_plans(self, run_id: str, close_no: int) -> list[PlanRow]:
        """The plans a bare ``CloseInvoice`` (the ``close_no``-th of its run) closes."""
        query = (select(*PLAN_COLUMNS).where(InvoicePlan.run_id == run_id, InvoicePlan.close_no == close_no)
                 .order_by(InvoicePlan.account))
        plans = [PlanRow(*row) for row in self.session.connection().execute(query)]
        for plan in plans:
            self.plans[(plan.run_id, plan.plan)] = plan
        return plans

    def invoice_names(self, account_ids: Sequence[int]) -> list[str]:
        """The invoices of these accounts, by name, for a miss's hint."""
        return list(self.session.scalars(select(Invoice.name).where(Invoice.account_id.in_(list(account_ids)))
                                         .order_by(Invoice.account_id, Invoice.sequence)))

    def invoices_named(self, account_ids: Sequence[int], names: Sequence[str]) -> dict[tuple[int, str], tuple[int, int]]:
        """(account id, invoice name) → (invoice id, sequence), for the accounts and names given."""
        found: dict[tuple[int, str], tuple[int, int]] = {}
        if not account_ids or not names:
            return found
        for part in chunks(sorted(set(account_ids))):
            query = select(Invoice.id, Invoice.account_id, Invoice.name, Invoice.sequence).where(
                self.dialect.any_of(Invoice.account_id, part), self.dialect.any_of(Invoice.name, sorted(set(names))))
            for row in self.session.execute(query):
                known = found.get((row.account_id, row.name))
                if known is None or row.sequence < known[1]:
                    found[(row.account_id, row.name)] = (row.id, row.sequence)
        return found

    def parents_of(self, account_ids: Iterable[int]) -> dict[int, int | None]:
        """Parent account id of each account (one query)."""
        wanted = sorted(set(account_ids))
        found: dict[int, int | None] = {}
        for part in chunks(wanted):
            rows = self.session.execute(select(Account.id, Account.parent_id).where(self.dialect.any_of(Account.id, part)))
            found.update({row[0]: row[1] for row in rows})
        return found

    def lock_accounts_and_ancestors(self, account_ids: Iterable[int]) -> dict[int, tuple[str, int | None]]:
        """These accounts and all their ancestors, read locked (PostgreSQL), each round in id order:
        id → (name, parent id). One query a level of the hierarchy."""
        found: dict[int, tuple[str, int | None]] = {}
        wanted = sorted(set(account_ids))
        for _ in range(64):
            for part in chunks(wanted):
                query = (select(Account.id, Account.name, Account.parent_id).where(self.dialect.any_of(Account.id, part))
                         .order_by(Account.id).with_for_update())
                found.update({row.id: (row.name, row.parent_id) for row in self.session.execute(query)})
            wanted = sorted({parent for _, parent in found.values() if parent is not None and parent not in found})
            if not wanted:
                break
        return found

    def invoice_counts(self, account_ids: Iterable[int]) -> dict[int, int]:
        """How many invoices each of these accounts has (those with none are absent)."""
        counts: dict[int, int] = {}
        for part in chunks(sorted(set(account_ids))):
            query = (select(Invoice.account_id, func.count()).where(self.dialect.any_of(Invoice.account_id, part))
                     .group_by(Invoice.account_id))
            counts.update({account_id: count for account_id, count in self.session.execute(query).tuples()})
        return counts

    def last_loaded_digest(self, entity: str, natural_key: str) -> str | None:
        """The content digest of the record that last loaded this natural key (the ledger's word)."""
        return self.session.scalar(latest_load(entity, natural_key).with_only_columns(LedgerEntry.digest))

    # -- rows by natural key ------------------------------------------------------------------

    def existing(self, table: Any, key_columns: Sequence[str], keys: Iterable[tuple[Any, ...]],
                 compared: Sequence[str]) -> dict[tuple[Any, ...], tuple[int, dict[str, Any]]]:
        """Rows of ``table`` with these natural keys: key → (id, the ``compared`` columns)."""
        wanted = sorted(set(keys), key=repr)
        found: dict[tuple[Any, ...], tuple[int, dict[str, Any]]] = {}
        columns = [table.c[c] for c in key_columns]
        for part in chunks(wanted):
            condition = (self.dialect.keys_in(columns, part) if len(columns) > 1
                         else self.dialect.any_of(columns[0], [k[0] for k in part]))
            for row in self.session.execute(select(table.c.id, *columns, *(table.c[c] for c in compared)).where(condition)):
                values = row._mapping
                found[tuple(values[c] for c in key_columns)] = (values["id"], {c: values[c] for c in compared})
        return found

    # -- parked parents ----------------------------------------------------------------------

    def raise_if_parked(self, entity: str, ref_key: str) -> None:
        letter = self.session.scalar(
            select(DeadLetter.id).where(DeadLetter.entity == entity, DeadLetter.ref_key == ref_key,
                                        DeadLetter.state == "open").limit(1))
        if letter is not None:
            raise Blocked(entity, show_key(ref_key), letter)


def _configured(kind: str, names: Sequence[str]) -> str:
    """With no near miss, name what is configured when it is short enough to read."""
    if not names:
        return f"no {kind} is configured: load it with the reference data first"
    if len(names) <= LISTED_NAMES:
        return f"configured: {', '.join(sorted(names))}"
    return f"none of the configured {kind} items is close to this name"
