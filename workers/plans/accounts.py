"""``User``: the account itself, keyed by (Owner, Name). Its references are resolved from the batch's
lookups; its password hash was made before the transaction opened (``workers/batch.py``), and a
stored one is compared by verifying the record's password against it. ``ChildAccount``: an account's
place under a parent, refused when it would make a cycle or once the account has invoices."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from shared.dialects import dialect_of, table_of
from shared.envelope import Envelope
from shared.errors import InvalidValue, MissingField, RuleViolation
from shared.schema.target import Account
from workers.passwords import hash_password, verify_password
from workers.plans import Batch, Planned, Planner, conflict, planner

BILL_DAYS = range(1, 29)
REFS = {  # field (= reference kind) → column
    "Role": "role_id", "Culture": "culture_id", "Currency": "currency_id", "Language": "language_id",
    "StatusType": "status_type_id", "TaxCode": "tax_code_id", "BillGroup": "bill_group_id", "CreditRating": "credit_rating_id",
}
COMPARED = (*REFS.values(), "bill_day", "disable_reason", "created_date", "password_hash")
TABLE = table_of(Account)


def require(env: Envelope, name: str) -> str:
    value = env.fields.get(name)
    if value is None or value == "":
        raise MissingField(f"{env.entity} needs {name}", field=name, value="")
    return value


@planner
class Users(Planner):
    entities = ("User",)

    def prefetch(self, records: Sequence[Envelope], batch: Batch) -> None:
        found = batch.found
        found.want_refs("Owner", (e.fields.get("Owner") for e in records))
        for kind in REFS:
            found.want_refs(kind, (e.fields.get(kind) for e in records))
        owners = {e.fields.get("Owner", ""): found.ref_ids.get(("Owner", e.fields.get("Owner", ""))) for e in records}
        keys = [(owners.get(e.fields.get("Owner", "")), e.fields.get("Name")) for e in records]
        batch.memo["rows"] = found.existing(TABLE, ("owner_id", "name"), [k for k in keys if k[0] and k[1]], COMPARED)

    def plan(self, env: Envelope, batch: Batch) -> Planned:
        found = batch.found
        name = require(env, "Name")
        owner_id = found.ref("Owner", require(env, "Owner"), "Owner")
        bill_day = env.fields.get("BillDay")
        if bill_day is not None and int(bill_day) not in BILL_DAYS:
            raise InvalidValue(f"BillDay {bill_day} is outside 1–28", field="BillDay", value=bill_day,
                               hint="accounts bill on a day from 1 to 28 (no 29, 30, 31)")
        values: dict[str, object] = {column: found.optional_ref(kind, env.fields.get(kind), kind)
                                     for kind, column in REFS.items()}
        created = env.fields.get("CreatedDate")
        values.update(bill_day=int(bill_day) if bill_day is not None else None, disable_reason=env.fields.get("DisableReason"),
                      created_date=datetime.fromisoformat(created) if created else None)
        existing = batch.memo["rows"].get((owner_id, name))
        secret = env.fields.get("Password")
        def hashed() -> str | None:
            return (batch.hashes.get(env.key) or hash_password(batch.vault.decrypt(secret))) if secret else None

        if existing is None:
            values["password_hash"] = hashed()
            return Planned(env, TABLE, {"owner_id": owner_id, "name": name}, values)
        stored = existing[1]["password_hash"]

        def same() -> bool:
            clear = batch.vault.decrypt(secret) if secret else None
            same_password = (clear is None and stored is None) or (
                clear is not None and stored is not None and verify_password(stored, clear))
            return same_password and all(existing[1][c] == values[c] for c in values)

        if env.upsert and not same():
            values["password_hash"] = hashed()
            return Planned(env, TABLE, {"owner_id": owner_id, "name": name}, values, existing=existing,
                           same=lambda: False)
        return Planned(env, TABLE, {"owner_id": owner_id, "name": name}, values, existing=existing, same=same)


def cycle_refusal(child: str, parent: str, chain: list[str]) -> RuleViolation:
    return RuleViolation(f"ChildAccount {child!r} under {parent!r} would make a cycle: {' → '.join(chain)}",
                         field="Parent", value=parent, hint="an account cannot be its own ancestor")


def own_parent_refusal(child: str, parent: str) -> RuleViolation:
    return RuleViolation(f"account {child!r} cannot be its own parent", field="Parent", value=parent)


def invoiced_refusal(child: str, invoices: int) -> RuleViolation:
    """The seed's alert: placing an account under a parent after it has invoices leaves them behind."""
    return RuleViolation(
        f"account {child!r} already has {invoices} invoice(s): its invoices would not transfer and display "
        "correctly on the new parent", field="Name", value=child,
        hint="ChildAccount is for the initial import only: load ChildAccount records before the ledger, or move "
             "the account in the billing system's tools (which moves its invoices)")


@planner
class ChildAccounts(Planner):
    """``ChildAccount``: an account's place under a parent, for a whole batch at once. The accounts
    the batch names and every ancestor of them are read locked, in id order a round at a time (a
    concurrent batch that could close a cycle with this one waits for it); the rules are checked
    against the batch's own view of the hierarchy, which every record planned moves, so two records
    of one batch cannot close a cycle either; one statement sets the parents. Record by record, each
    one took two row locks and an invoice count, and batches waited on each other's parent locks."""

    entities = ("ChildAccount",)

    def prefetch(self, records: Sequence[Envelope], batch: Batch) -> None:
        found = batch.found
        found.want_accounts(e.fields.get(f) for e in records for f in ("Name", "Parent"))
        def ids(field: str) -> set[int]:
            return {row.id for e in records for row in found.accounts.get(e.fields.get(field, ""), [])}

        children = ids("Name")
        hierarchy = found.lock_accounts_and_ancestors(children | ids("Parent"))
        batch.memo["parent"] = {account_id: parent for account_id, (_, parent) in hierarchy.items()}
        batch.memo["name"] = {account_id: name for account_id, (name, _) in hierarchy.items()}
        batch.memo["invoices"] = found.invoice_counts(children)
        batch.memo["digest"] = {}

    def plan(self, env: Envelope, batch: Batch) -> Planned:
        found = batch.found
        child = found.account(require(env, "Name"), "Name")
        parent = found.account(require(env, "Parent"), "Parent")
        parents: dict[int, int | None] = batch.memo["parent"]
        current = parents.get(child.id)
        if current == parent.id:
            return Planned(env, TABLE, {}, {}, outcome="skipped", target_id=child.id)
        self._refuse_cycle(child.name, parent.name, child.id, parent.id, batch)
        invoices = batch.memo["invoices"].get(child.id, 0)
        if invoices:
            raise invoiced_refusal(child.name, invoices)
        if current is not None:  # under another parent already: the same record again is skipped
            earlier = batch.memo["digest"].get(child.id) or found.last_loaded_digest(env.entity, child.name)
            if earlier == env.digest:
                return Planned(env, TABLE, {}, {}, outcome="skipped", target_id=child.id)
            if not env.upsert:
                raise conflict(batch.entity, Planned(env, TABLE, {}, {}))
        parents[child.id] = parent.id
        batch.memo["digest"][child.id] = env.digest
        return Planned(env, TABLE, {}, {"parent_id": parent.id}, target_id=child.id)

    @staticmethod
    def _refuse_cycle(child: str, parent: str, child_id: int, parent_id: int, batch: Batch) -> None:
        parents: dict[int, int | None] = batch.memo["parent"]
        chain, node = [child, parent], parent_id
        for _ in range(len(parents) + 1):
            above = parents.get(node)
            if above is None:
                break
            node = above
            chain.append(batch.memo["name"].get(node, f"#{node}"))
            if node == child_id:
                raise cycle_refusal(child, parent, chain)
        if parent_id == child_id:
            raise own_parent_refusal(child, parent)

    def write(self, session: Session, planned: list[Planned], batch: Batch) -> None:
        moved = {row.target_id: row.values["parent_id"] for row in planned
                 if row.outcome == "committed" and row.error is None and row.target_id is not None}
        dialect_of(session).update_rows(session, TABLE, "id", [{"id": i, "parent_id": p} for i, p in sorted(moved.items())])
