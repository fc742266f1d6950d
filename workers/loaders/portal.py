"""The csv format's imports (the seed's Customer Import Tool): ``Registration`` creates a customer
account and its owner login; ``Autopay`` adds a payment method to the owner login and enrols it for
autopay on every listed invoice type; ``Paperless`` sets the owner login's e-mail and enrols it for
paperless delivery. Accounts are found by account number (the account's name)."""

from __future__ import annotations

import json
from collections.abc import Callable

from sqlalchemy import select

from shared.derived import CREATE_MISSING
from shared.errors import RuleViolation, UnknownReference
from shared.schema.portal import Enrolment, Login, PaymentMethod
from shared.schema.target import Account
from workers.context import LoadContext, Loaded
from workers.loaders import loader

_LOGIN_FIELDS = ("name", "email", "phone", "address")


def _account(ctx: LoadContext) -> Account | None:
    number = ctx.require("account_number")
    found = ctx.session.scalars(select(Account).where(Account.name == number).limit(2)).all()
    if len(found) > 1:
        raise RuleViolation(f"account number {number!r} exists under more than one owner", field="account_number",
                            value=number, hint="account numbers must be unique to import against them")
    return found[0] if found else None


def _owner_login(ctx: LoadContext, account: Account) -> Login | None:
    return ctx.session.scalar(select(Login).where(Login.account_id == account.id, Login.is_owner.is_(True)))


def _new_login(ctx: LoadContext, account: Account, login: str, values: dict[str, str | None]) -> Login:
    taken = ctx.session.scalar(select(Login.account_id).where(Login.login == login))
    if taken is not None:
        raise RuleViolation(f"login {login!r} is already used by another account", field="login", value=login,
                            hint="login names are unique across accounts")
    row = Login(account_id=account.id, login=login, is_owner=True, **values)
    ctx.session.add(row)
    ctx.session.flush()
    return row


@loader("Registration")
def load_registration(ctx: LoadContext) -> Loaded:
    values = {f: ctx.get(f) for f in _LOGIN_FIELDS}
    login_name = ctx.require("login")
    account = _account(ctx)
    if account is None:
        account = Account(name=ctx.require("account_number"))
        ctx.session.add(account)
        ctx.session.flush()
        _new_login(ctx, account, login_name, values)
        return Loaded(account.id)
    owner = _owner_login(ctx, account)
    if owner is None:  # an account loaded another way (engageip) gets its owner login
        _new_login(ctx, account, login_name, values)
        return Loaded(account.id)
    found = owner

    def update() -> None:
        found.login = login_name
        for name, value in values.items():
            setattr(found, name, value)
    same = found.login == login_name and all(getattr(found, f) == v for f, v in values.items())
    return ctx.existing(account.id, update, same=same)


def _owner_of(ctx: LoadContext) -> Login:
    """The owner login of the row's account; with --create-missing an account that does not exist is
    created first, with an owner login named after its account number."""
    number = ctx.require("account_number")
    account = _account(ctx)
    if account is None:
        ctx.raise_if_parked("Registration", number)
        if ctx.get(CREATE_MISSING) != "true":
            raise UnknownReference(f"account {number!r} does not exist", field="account_number", value=number,
                                   hint="import its registration first, or run again with --create-missing")
        account = Account(name=number)
        ctx.session.add(account)
        ctx.session.flush()
        return _new_login(ctx, account, number, {"name": ctx.get("name") or ctx.get("name_on_card")
                                                 or ctx.get("name_on_account"), "email": ctx.get("email")})
    owner = _owner_login(ctx, account)
    if owner is None:
        raise UnknownReference(f"account {number!r} has no owner login", field="account_number", value=number,
                               hint="import a registration for it first: autopay and paperless act on the owner login")
    return owner


def _enrol(ctx: LoadContext, login: Login, kind: str, payment_method_id: int | None = None) -> None:
    """Enrol on every listed invoice type (the seed: each of them, even without an invoice of that type)."""
    for name in json.loads(ctx.require("invoice_types")):
        type_id = ctx.ref("InvoiceType", "invoice_types", name)
        existing = ctx.session.scalar(select(Enrolment).where(Enrolment.login_id == login.id, Enrolment.kind == kind,
                                                              Enrolment.invoice_type_id == type_id))
        if existing is None:
            ctx.session.add(Enrolment(login_id=login.id, invoice_type_id=type_id, kind=kind,
                                      payment_method_id=payment_method_id))
        else:
            existing.payment_method_id = payment_method_id


def _once_per_account(ctx: LoadContext, apply: Callable[[], Loaded]) -> Loaded:
    """Autopay and paperless rows are keyed by account number: the first for an account applies;
    a later one with other content is a Conflict unless the run is ``--upsert`` (then it applies
    too), as for every entity with a natural key."""
    previous = ctx.previous_load()
    if previous is None or previous.target_id is None:
        return apply()
    outcome: list[Loaded] = []
    verdict = ctx.existing(previous.target_id, lambda: outcome.append(apply()))
    return outcome[0] if outcome else verdict


@loader("Paperless")
def load_paperless(ctx: LoadContext) -> Loaded:
    def apply() -> Loaded:
        login = _owner_of(ctx)
        login.email = ctx.require("email")
        if ctx.get("name") and not login.name:
            login.name = ctx.get("name")
        _enrol(ctx, login, "paperless")
        ctx.session.flush()
        return Loaded(login.id)
    return _once_per_account(ctx, apply)


@loader("Autopay")
def load_autopay(ctx: LoadContext) -> Loaded:
    return _once_per_account(ctx, lambda: _add_payment_method(ctx))


def _add_payment_method(ctx: LoadContext) -> Loaded:
    login = _owner_of(ctx)
    card = ctx.require("payment_method") == "card"
    month, year = ctx.get("card_expiry_month"), ctx.get("card_expiry_year")
    method = PaymentMethod(
        source_key=ctx.envelope.key, login_id=login.id, kind="card" if card else "ach",
        secret=ctx.require("card_number" if card else "bank_account_number"), last4=ctx.require("last4"),
        holder=ctx.require("name_on_card" if card else "name_on_account"), card_type=ctx.get("card_type"),
        expiry_month=int(month) if month else None, expiry_year=int(year) if year else None,
        bank_name=ctx.get("bank_name"), routing_number=ctx.get("routing_number"), account_type=ctx.get("bank_account_type"),
    )
    ctx.session.add(method)
    ctx.session.flush()
    _enrol(ctx, login, "autopay", method.id)
    return Loaded(method.id)
