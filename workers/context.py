"""What a loader gets: the open session, the record, and lookups that resolve references exactly
(case-sensitive), explain a miss with a near-miss hint, and tell a *blocked* record (its parent is
dead-lettered or blocked) from a dead one (its parent does not exist anywhere)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.envelope import Envelope, natural_key_text, show_key
from shared.errors import Blocked, Conflict, MissingField, RuleViolation, UnknownReference
from shared.hints import hint_for
from shared.registry import EntityType, Registry
from shared.schema.control import DeadLetter, LedgerEntry
from shared.schema.ledger import Invoice
from shared.schema.target import Account, Contact, ContactPoint, ReferenceItem
from shared.vault import Vault
from workers.lookups import latest_load
from workers.passwords import hash_password

T = TypeVar("T")
HINT_CANDIDATES = 2000
LISTED_NAMES = 12


@dataclass
class PendingLoad:
    """A ledger entry decided in a batch transaction and written with the others when it commits
    (a plain object: building 500 ORM instances costs more than the INSERT)."""

    key: str
    entity: str
    digest: str
    natural_key: str | None
    run_id: str
    record_id: int
    target_id: int | None = None


@dataclass
class BatchCache:
    """What one batch transaction has already looked up or written, so a batch of records that name
    the same few accounts, contacts and reference items asks the database once, not per record.
    Only rows read or written inside the transaction are kept, and the cache dies with it."""

    pending: dict[tuple[str, str], PendingLoad] = field(default_factory=dict)
    """Ledger entries of records loaded earlier in the transaction, not yet written."""
    lookups: dict[tuple[str, str], int] = field(default_factory=dict)
    """Reference ids by (kind, name)."""
    accounts: dict[str, list[Account]] = field(default_factory=dict)
    """Accounts found by name (a name held by two owners has two). Misses are not kept: an account
    created later in the transaction must still be found."""
    accounts_asked: set[str] = field(default_factory=set)
    contacts: dict[tuple[int, str], Contact] = field(default_factory=dict)
    """Contacts by (account id, contact name), for every account in ``contacts_loaded``."""
    contacts_loaded: set[int] = field(default_factory=set)
    points: dict[tuple[int, int], ContactPoint] = field(default_factory=dict)
    """Contact points by (contact id, point type id), for every contact in ``points_loaded``."""
    points_loaded: set[int] = field(default_factory=set)
    invoices: dict[tuple[int, int], Invoice] = field(default_factory=dict)
    """Invoices locked by this transaction, by (account id, sequence)."""
    invoices_prepared: bool = False
    envelopes: Sequence[Envelope] = ()
    """The batch's records, so a loader can fetch what all of them need in one query."""
    memo: dict[object, Any] = field(default_factory=dict)
    """Values loaders derive from rows that do not change during a run (invoice plans, tax rates)."""
    password_hashes: dict[str, str] = field(default_factory=dict)
    """Hashes of the batch's passwords by record key, computed before the transaction opened: a slow
    hash must never hold the database's write lock."""
    after: dict[Callable[[list[Any]], None], dict[object, Any]] = field(default_factory=dict)
    """Work owed once per transaction, run before it commits on every item owed it (the invoices to
    settle), so it can do them all in one query."""

    def run_after(self) -> None:
        for work, items in self.after.items():
            work(list(items.values()))

    def prefetch_accounts(self, session: Session, names: Iterable[str]) -> None:
        wanted = sorted({n for n in names if n and n not in self.accounts_asked})
        for start in range(0, len(wanted), 1000):
            part = wanted[start:start + 1000]
            self.accounts_asked.update(part)
            for account in session.scalars(select(Account).where(Account.name.in_(part))):
                self.accounts.setdefault(account.name, []).append(account)

    def prefetch_points(self, session: Session, contact_ids: Iterable[int]) -> None:
        """The points of the given contacts and, in the same query, of every contact fetched so far
        (a batch of points touches the contacts of a few hundred accounts)."""
        asked = set(contact_ids)
        if asked <= self.points_loaded:
            return
        wanted = sorted((asked | {c.id for c in self.contacts.values() if c.id is not None}) - self.points_loaded)
        for start in range(0, len(wanted), 1000):
            part = wanted[start:start + 1000]
            self.points_loaded.update(part)
            for point in session.scalars(select(ContactPoint).where(ContactPoint.contact_id.in_(part))):
                self.points[(point.contact_id, point.point_type_id)] = point

    def prefetch_contacts(self, session: Session, account_ids: Iterable[int]) -> None:
        """The contacts of the given accounts and, in the same query, of every account fetched so far."""
        asked = set(account_ids)
        if asked <= self.contacts_loaded:
            return
        fetched = {a.id for found in self.accounts.values() for a in found if a.id is not None}
        wanted = sorted((asked | fetched) - self.contacts_loaded)
        for start in range(0, len(wanted), 1000):
            part = wanted[start:start + 1000]
            self.contacts_loaded.update(part)
            for contact in session.scalars(select(Contact).where(Contact.account_id.in_(part))):
                self.contacts[(contact.account_id, contact.name)] = contact


@dataclass
class Loaded:
    """A loader's verdict: the target row's id, and whether it was written or already there.

    A loader may hand back the new ``row`` instead of its id, without flushing: in a batch the rows
    are then inserted together, one multi-row INSERT … RETURNING per table, and the id read after."""

    _target_id: int | None = None
    outcome: str = "committed"
    row: Any = None

    @property
    def target_id(self) -> int | None:
        return self.row.id if self.row is not None else self._target_id


class LoadContext:
    """One record's view of the target database while its loader runs."""

    def __init__(self, session: Session, envelope: Envelope, entity: EntityType, registry: Registry, vault: Vault,
                 cache: BatchCache | None = None) -> None:
        self.session, self.envelope, self.entity, self.registry, self.vault = session, envelope, entity, registry, vault
        self.fields = envelope.fields
        self.batch = cache
        """Set when the record loads in a batch transaction; None on the per-record path."""
        self.lookups = cache.lookups if cache is not None else {}

    def memo(self, key: object, make: Callable[[], T]) -> T:
        """``make()`` once per batch transaction (the session's identity map holds rows only weakly,
        so the same reference row would otherwise be read again for every record)."""
        if self.batch is None:
            return make()
        if key not in self.batch.memo:
            self.batch.memo[key] = make()
        return cast(T, self.batch.memo[key])

    def defer(self, work: Callable[[list[T]], None], key: object, item: T) -> None:
        """Owe ``work`` on ``item``: now outside a batch; in a batch, once before it commits, on every
        item owed it (an invoice touched by 200 lines of a batch is settled once, with the others)."""
        if self.batch is None:
            work([item])
        else:
            self.batch.after.setdefault(work, {})[key] = item

    # -- fields ------------------------------------------------------------------------------

    def get(self, name: str) -> str | None:
        return self.fields.get(name)

    def require(self, name: str) -> str:
        value = self.fields.get(name)
        if value is None or value == "":
            raise MissingField(f"{self.entity.name} needs {name}", field=name, value="")
        return value

    # -- references ----------------------------------------------------------------------------

    def ref(self, kind: str, field: str, name: str | None = None) -> int:
        """The id of reference item ``kind`` named by ``field`` (or by ``name`` given directly)."""
        wanted = name if name is not None else self.require(field)
        found = self.lookups.get((kind, wanted))
        if found is None:
            with self.session.no_autoflush:  # reference items are never among a batch's pending rows
                found = self.session.scalar(select(ReferenceItem.id).where(ReferenceItem.kind == kind,
                                                                           ReferenceItem.name == wanted))
        if found is not None:
            self.lookups[(kind, wanted)] = found
            return found
        self.raise_if_parked(kind, wanted)
        names = self.session.scalars(select(ReferenceItem.name).where(ReferenceItem.kind == kind).limit(HINT_CANDIDATES)).all()
        raise UnknownReference(f"{kind} {wanted!r} not found", field=field, value=wanted,
                               hint=hint_for(wanted, names) or _configured(kind, names))

    def optional_ref(self, kind: str, field: str) -> int | None:
        return self.ref(kind, field) if self.fields.get(field) else None

    def account(self, field: str, name: str | None = None) -> Account:
        """The account (``User``) named by ``field``; names are matched exactly."""
        wanted = name if name is not None else self.require(field)
        found: Sequence[Account] = []
        if self.batch is not None:
            self.batch.prefetch_accounts(self.session, [wanted])
            found = self.batch.accounts.get(wanted, [])
        if not found:
            found = self.session.scalars(select(Account).where(Account.name == wanted).limit(2)).all()
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise RuleViolation(f"account name {wanted!r} exists under more than one Owner", field=field, value=wanted,
                                hint="account references must be unique names")
        self.raise_if_parked("User", wanted)
        near = self.session.scalars(
            select(Account.name).where(func.lower(Account.name) == wanted.lower()).limit(1)
        ).all()
        raise UnknownReference(f"account (User) {wanted!r} not found", field=field, value=wanted,
                               hint=hint_for(wanted, near) or "load the User first, in this run or an earlier one")

    def contact(self, user_field: str = "User", name_field: str = "ContactName") -> Contact:
        """The contact ``ContactName`` of account ``User``."""
        contact_name = self.require(name_field)
        user = self.fields.get(user_field, "")
        accounts: list[int] = []
        if self.batch is not None:
            self.batch.prefetch_accounts(self.session, [user])
            accounts = [a.id for a in self.batch.accounts.get(user, [])]
            self.batch.prefetch_contacts(self.session, accounts)
            cached = [self.batch.contacts[(a, contact_name)] for a in accounts if (a, contact_name) in self.batch.contacts]
            if cached:
                return cached[0]
        if not accounts:
            accounts = list(self.session.scalars(select(Account.id).where(Account.name == user)).all())
        if accounts:
            found = self.session.scalar(select(Contact).where(Contact.account_id.in_(accounts), Contact.name == contact_name))
            if found is not None:
                return found
        self.raise_if_parked("Contact", natural_key_text({"User": user, "ContactName": contact_name}, ("User", "ContactName")))
        if not accounts:
            self.account(user_field)  # raises the account-level error (blocked or unknown)
        names = self.session.scalars(select(Contact.name).where(Contact.account_id.in_(accounts)).limit(HINT_CANDIDATES))
        raise UnknownReference(f"contact {contact_name!r} of account {user!r} not found", field=name_field,
                               value=contact_name,
                               hint=hint_for(contact_name, names) or "the contact must exist (load its Contact first)")

    def raise_if_parked(self, entity: str, ref_key: str) -> None:
        letter = self.session.scalar(
            select(DeadLetter.id).where(DeadLetter.entity == entity, DeadLetter.ref_key == ref_key,
                                        DeadLetter.state == "open").limit(1)
        )
        if letter is not None:
            raise Blocked(entity, show_key(ref_key), letter)

    # -- existing rows -------------------------------------------------------------------------

    def natural_key(self) -> str:
        return natural_key_text(self.fields, self.entity.natural_key)

    def previous_load(self) -> LedgerEntry | PendingLoad | None:
        """The latest ledger entry of a record with this natural key (what content loaded the row)."""
        earlier_in_batch = self.batch.pending.get((self.entity.name, self.natural_key())) if self.batch else None
        if earlier_in_batch is not None:
            return earlier_in_batch
        return self.session.scalars(latest_load(self.entity.name, self.natural_key())).first()

    def existing(self, target_id: int, update: Callable[[], None], same: bool | None = None) -> Loaded:
        """A row with this record's natural key is already in the target.

        Identical content → skipped. Different → Conflict, unless the run is ``--upsert``: then
        ``update`` rewrites the row. ``same`` lets a loader compare the row directly; otherwise the
        ledger says what content loaded it."""
        if same is None:
            previous = self.previous_load()
            same = previous is not None and previous.digest == self.envelope.digest
        if same:
            return Loaded(target_id, "skipped")
        if self.envelope.upsert:
            update()
            self.session.flush()
            return Loaded(target_id, "committed")
        names = "+".join(self.entity.natural_key)
        raise Conflict(f"{self.entity.name} with {names} {show_key(self.natural_key())!r} already exists with different content",
                       field=self.entity.natural_key[-1], value=show_key(self.natural_key()),
                       hint="run with --upsert to update it, or discard this record")

    def password_hash(self, clear: str) -> str:
        """This record's password hash: made before the batch's transaction opened, or now."""
        made = self.batch.password_hashes.get(self.envelope.key) if self.batch is not None else None
        return made if made is not None else hash_password(clear)

    def reveal(self, field: str) -> str | None:
        """Decrypt a secret field at the last moment (never log or store the result)."""
        token = self.fields.get(field)
        return None if token is None else self.vault.decrypt(token)


def _configured(kind: str, names: Sequence[str]) -> str:
    """With no near miss, name what is configured when it is short enough to read."""
    if not names:
        return f"no {kind} is configured: load it with the reference data first"
    if len(names) <= LISTED_NAMES:
        return f"configured: {', '.join(sorted(names))}"
    return f"none of the configured {kind} items is close to this name"


Loader = Callable[[LoadContext], Loaded]
