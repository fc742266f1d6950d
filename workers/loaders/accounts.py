"""Accounts: ``User`` (the account itself) and ``ChildAccount`` (its place under a parent, refused
once the account has invoices)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from shared.errors import InvalidValue, RuleViolation
from shared.schema.ledger import Invoice
from shared.schema.target import Account
from workers.context import LoadContext, Loaded
from workers.loaders import loader
from workers.passwords import verify_password

BILL_DAYS = range(1, 29)
_USER_REFS = {  # field → (reference kind, column)
    "Role": "role_id", "Culture": "culture_id", "Currency": "currency_id", "Language": "language_id",
    "StatusType": "status_type_id", "TaxCode": "tax_code_id", "BillGroup": "bill_group_id", "CreditRating": "credit_rating_id",
}


def _user_values(ctx: LoadContext) -> dict[str, object]:
    bill_day = ctx.get("BillDay")
    if bill_day is not None and int(bill_day) not in BILL_DAYS:
        raise InvalidValue(f"BillDay {bill_day} is outside 1–28", field="BillDay", value=bill_day,
                           hint="accounts bill on a day from 1 to 28 (no 29, 30, 31)")
    values: dict[str, object] = {column: ctx.optional_ref(kind, kind) for kind, column in _USER_REFS.items()}
    created = ctx.get("CreatedDate")
    values.update(
        bill_day=int(bill_day) if bill_day is not None else None,
        disable_reason=ctx.get("DisableReason"),
        created_date=datetime.fromisoformat(created) if created else None,
    )
    return values


@loader("User")
def load_user(ctx: LoadContext) -> Loaded:
    name = ctx.require("Name")
    owner_id = ctx.ref("Owner", "Owner")
    values = _user_values(ctx)
    password = ctx.reveal("Password")
    existing = _existing_account(ctx, owner_id, name)
    if existing is not None:
        def update() -> None:
            for column, value in values.items():
                setattr(existing, column, value)
            existing.password_hash = ctx.password_hash(password) if password else None
        same_password = (password is None and existing.password_hash is None) or (
            password is not None and existing.password_hash is not None and verify_password(existing.password_hash, password))
        same = same_password and all(getattr(existing, c) == v for c, v in values.items())
        return ctx.existing(existing.id, update, same=same)
    account = Account(owner_id=owner_id, name=name, password_hash=ctx.password_hash(password) if password else None,
                      **values)
    ctx.session.add(account)
    if ctx.batch is not None:
        ctx.batch.accounts.setdefault(name, []).append(account)
    return Loaded(row=account)


def _existing_account(ctx: LoadContext, owner_id: int, name: str) -> Account | None:
    """In a batch, the accounts of every name in it were fetched at once (and new ones are added as
    they are made), so a name asked and absent does not exist."""
    if ctx.batch is not None:
        ctx.batch.prefetch_accounts(ctx.session, [name])
        return next((a for a in ctx.batch.accounts.get(name, []) if a.owner_id == owner_id), None)
    return ctx.session.scalar(select(Account).where(Account.owner_id == owner_id, Account.name == name))


@loader("ChildAccount")
def load_child_account(ctx: LoadContext) -> Loaded:
    child = _lock(ctx, ctx.account("Name"))
    parent = _lock(ctx, ctx.account("Parent"))
    if child.parent_id == parent.id:
        return Loaded(child.id, "skipped")
    _refuse_cycle(ctx, child, parent)
    _refuse_if_invoiced(ctx, child)
    if child.parent_id is not None:
        def update() -> None:
            child.parent_id = parent.id
        return ctx.existing(child.id, update)
    child.parent_id = parent.id
    return Loaded(child.id)


def _refuse_if_invoiced(ctx: LoadContext, child: Account) -> None:
    """The seed's alert: placing an account under a parent after it has invoices leaves them behind."""
    invoices = ctx.session.scalar(select(func.count()).select_from(Invoice).where(Invoice.account_id == child.id)) or 0
    if invoices:
        raise RuleViolation(
            f"account {child.name!r} already has {invoices} invoice(s): its invoices would not transfer and display "
            "correctly on the new parent", field="Name", value=child.name,
            hint="ChildAccount is for the initial import only: load ChildAccount records before the ledger, or move "
                 "the account in the billing system's tools (which moves its invoices)")


def _lock(ctx: LoadContext, account: Account) -> Account:
    """Row lock (PostgreSQL) so two concurrent ChildAccount records cannot close a cycle together."""
    locked = ctx.session.scalar(select(Account).where(Account.id == account.id).with_for_update())
    assert locked is not None
    return locked


def _refuse_cycle(ctx: LoadContext, child: Account, parent: Account) -> None:
    chain = [child.name, parent.name]
    node: Account | None = parent
    while node is not None and node.parent_id is not None:
        node = _lock(ctx, ctx.session.get_one(Account, node.parent_id))
        chain.append(node.name)
        if node.id == child.id:
            raise RuleViolation(f"ChildAccount {child.name!r} under {parent.name!r} would make a cycle: {' → '.join(chain)}",
                                field="Parent", value=parent.name, hint="an account cannot be its own ancestor")
    if parent.id == child.id:
        raise RuleViolation(f"account {child.name!r} cannot be its own parent", field="Parent", value=parent.name)
