"""engageip account attributes: expiry date, tax class, tax code, tax exemption (per tax code, with
its certificate), notes, profile answers and extended attributes."""

from __future__ import annotations

from datetime import datetime

from shared.schema.services import AccountAttribute, ExtendedAttribute, Note, ProfileAnswer
from workers.context import LoadContext, Loaded
from workers.loaders import loader
from workers.rows import put

END_OF_DAY = "T23:59:59"


def end_of_day(text: str) -> str:
    """The seed: "ensure that the time is completed as well" — a date alone means its last second."""
    return text + END_OF_DAY if len(text) == 10 else text


def _attribute(ctx: LoadContext, kind: str, values: dict[str, object], key: str = "") -> Loaded:
    account = ctx.account("User")
    return put(ctx, AccountAttribute, {"account_id": account.id, "kind": kind, "key": key}, values)


@loader("UserAttributeExpiryDate")
def load_expiry(ctx: LoadContext) -> Loaded:
    return _attribute(ctx, "expiry_date", {"value": end_of_day(ctx.require("ExpiryDate"))})


@loader("UserAttributeTaxClass")
def load_tax_class(ctx: LoadContext) -> Loaded:
    return _attribute(ctx, "tax_class", {"value": ctx.require("TaxClass"), "reference_id": ctx.ref("TaxClass", "TaxClass")})


@loader("UserAttributeTaxCode")
def load_tax_code(ctx: LoadContext) -> Loaded:
    return _attribute(ctx, "tax_code", {"value": ctx.require("TaxCode"), "reference_id": ctx.ref("TaxCode", "TaxCode")})


@loader("UserAttributeTaxExempt")
def load_tax_exempt(ctx: LoadContext) -> Loaded:
    code = ctx.require("TaxCode")
    return _attribute(ctx, "tax_exempt", {"value": code, "reference_id": ctx.ref("TaxCode", "TaxCode"),
                                          "certificate": ctx.get("Certificate")}, key=code)


@loader("UserNote")
def load_note(ctx: LoadContext) -> Loaded:
    account = ctx.account("User")
    noted = ctx.get("Date")
    note = Note(source_key=ctx.envelope.key, account_id=account.id, note_type_id=ctx.ref("NoteType", "Type"),
                note=ctx.require("Note"), noted_at=datetime.fromisoformat(noted) if noted else None)
    ctx.session.add(note)
    ctx.session.flush()
    return Loaded(note.id)


@loader("UserProfileAnswer")
def load_profile_answer(ctx: LoadContext) -> Loaded:
    account = ctx.account("User")
    return put(ctx, ProfileAnswer, {"account_id": account.id, "question_id": ctx.ref("ProfileQuestion", "Question"),
                                    "user_service_id": None}, {"answer": ctx.get("Answer")})


@loader("UserExtendedAttribute")
def load_extended_attribute(ctx: LoadContext) -> Loaded:
    account = ctx.account("User")
    return put(ctx, ExtendedAttribute, {"owner_kind": "account", "owner_id": account.id, "name": ctx.require("Name")},
               {"value": ctx.get("Value")})
