"""What a loader gets: the open session, the record, and lookups that resolve references exactly
(case-sensitive), explain a miss with a near-miss hint, and tell a *blocked* record (its parent is
dead-lettered or blocked) from a dead one (its parent does not exist anywhere)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.envelope import Envelope, natural_key_text, show_key
from shared.errors import Blocked, Conflict, MissingField, RuleViolation, UnknownReference
from shared.hints import hint_for
from shared.registry import EntityType, Registry
from shared.schema.control import DeadLetter, LedgerEntry
from shared.schema.target import Account, Contact, ReferenceItem
from shared.vault import Vault

HINT_CANDIDATES = 2000
LISTED_NAMES = 12


@dataclass
class Loaded:
    """A loader's verdict: the target row's id, and whether it was written or already there."""

    target_id: int | None
    outcome: str = "committed"


class LoadContext:
    """One record's view of the target database while its loader runs."""

    def __init__(self, session: Session, envelope: Envelope, entity: EntityType, registry: Registry, vault: Vault) -> None:
        self.session, self.envelope, self.entity, self.registry, self.vault = session, envelope, entity, registry, vault
        self.fields = envelope.fields

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
        found = self.session.scalar(select(ReferenceItem.id).where(ReferenceItem.kind == kind, ReferenceItem.name == wanted))
        if found is not None:
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
        accounts = self.session.scalars(select(Account.id).where(Account.name == user)).all()
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

    def previous_load(self) -> LedgerEntry | None:
        """The latest ledger entry of a record with this natural key (what content loaded the row)."""
        return self.session.scalars(
            select(LedgerEntry).where(LedgerEntry.entity == self.entity.name, LedgerEntry.natural_key == self.natural_key())
            .order_by(LedgerEntry.committed_at.desc()).limit(1)
        ).first()

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
