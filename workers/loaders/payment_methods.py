"""engageip payment methods of an account: cash, check (one each, keyed by account), cards and bank
accounts (ACH). Numbers arrive as vault ciphertext — the producer checked them (Luhn, routing
checksum) and encrypted them before publishing — and are stored as such, with their last four."""

from __future__ import annotations

from shared.schema.services import AccountPaymentMethod
from workers.context import LoadContext, Loaded
from workers.loaders import loader
from workers.rows import put


def _default(ctx: LoadContext) -> bool:
    return ctx.get("Default") == "true"


@loader("UserPaymentMethodCash", "UserPaymentMethodCheck")
def load_cash_or_check(ctx: LoadContext) -> Loaded:
    kind = "cash" if ctx.entity.name == "UserPaymentMethodCash" else "check"
    account = ctx.account("User")
    return put(ctx, AccountPaymentMethod, {"account_id": account.id, "kind": kind},
               {"is_default": _default(ctx), "source_key": ctx.envelope.key})


def _insert(ctx: LoadContext, **values: object) -> Loaded:
    account = ctx.account("User")
    row = AccountPaymentMethod(source_key=ctx.envelope.key, account_id=account.id, is_default=_default(ctx),
                               last4=ctx.require("Last4"), **values)
    ctx.session.add(row)
    ctx.session.flush()
    return Loaded(row.id)


@loader("UserPaymentMethodCreditCard")
def load_card(ctx: LoadContext) -> Loaded:
    return _insert(ctx, kind="card", secret=ctx.require("CardNumber"), holder=ctx.require("NameOnCard"),
                   card_type=ctx.get("CardType"), expiry_month=int(ctx.require("ExpiryMonth")),
                   expiry_year=int(ctx.require("ExpiryYear")))


@loader("UserPaymentMethodACH")
def load_ach(ctx: LoadContext) -> Loaded:
    return _insert(ctx, kind="ach", secret=ctx.require("AccountNumber"), holder=ctx.require("NameOnAccount"),
                   bank_name=ctx.get("BankName"), routing_number=ctx.require("RoutingNumber"),
                   account_type=ctx.require("AccountType"))
