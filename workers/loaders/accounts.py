"""Accounts: ``User`` (the account itself), record by record. ``ChildAccount`` has only its
set-based planner (``workers/plans/accounts.py``), which locks a whole batch's hierarchy at once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from shared.errors import InvalidValue
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
