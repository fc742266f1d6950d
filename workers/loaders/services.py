"""engageip services: ``UserPackage`` (a package on an account), ``UserService`` (a service of one
of its packages), ``UserPackageAttributeDiscount``, and the attributes and profile answers that hang
on a package or a service. Packages and services are named, as in the seed, by the package or
service name; an account's user package is found by (account, package name)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import select

from shared.envelope import KEY_SEPARATOR, natural_key_text
from shared.errors import Blocked, RuleViolation, UnknownReference
from shared.hints import hint_for
from shared.schema.control import DeadLetter
from shared.schema.services import ExtendedAttribute, PackageDiscount, ProfileAnswer, UserPackage, UserService
from shared.schema.target import ReferenceItem
from workers.context import LoadContext, Loaded
from workers.loaders import loader
from workers.rows import put


def user_package(ctx: LoadContext, field: str = "UserPackage") -> UserPackage:
    """The account's package named by ``field`` (a package name). A package waiting in the
    dead-letter store blocks the record before anything else is looked up."""
    account = ctx.account("User")
    name = ctx.require(field)
    found = ctx.session.scalar(select(UserPackage).join(ReferenceItem, ReferenceItem.id == UserPackage.package_id)
                               .where(UserPackage.account_id == account.id, ReferenceItem.kind == "Package",
                                      ReferenceItem.name == name))
    if found is not None:
        return found
    ctx.raise_if_parked("UserPackage", natural_key_text({"User": account.name, "Name": name}, ("User", "Name")))
    ctx.ref("Package", field, name)  # an unknown package is named as such
    names = sorted(ctx.session.scalars(select(ReferenceItem.name).join(UserPackage, UserPackage.package_id == ReferenceItem.id)
                                       .where(UserPackage.account_id == account.id)).all())
    raise UnknownReference(f"account {account.name!r} has no package {name!r}", field=field, value=name,
                           hint=hint_for(name, names) or (f"its packages: {', '.join(names)}" if names
                                                          else "load its UserPackage first"))


def user_service(ctx: LoadContext, package: UserPackage, field: str = "UserService") -> UserService:
    name = ctx.require(field)
    found = ctx.session.scalar(select(UserService).join(ReferenceItem, ReferenceItem.id == UserService.service_id)
                               .where(UserService.user_package_id == package.id, ReferenceItem.kind == "Service",
                                      ReferenceItem.name == name))
    if found is not None:
        return found
    key = {"User": ctx.require("User"), "UserPackage": ctx.require("UserPackage"), "Name": name}
    ctx.raise_if_parked("UserService", natural_key_text(key, ("User", "UserPackage", "Name")))
    ctx.ref("Service", field, name)
    raise UnknownReference(f"package {ctx.require('UserPackage')!r} of account {ctx.require('User')!r} has no service "
                           f"{name!r}", field=field, value=name, hint="load its UserService first")


def _raise_if_any_service_parked(ctx: LoadContext, user: str, service: str) -> None:
    """A profile answer names a service without its package: blocked if any of the account's
    services of that name waits in the dead-letter store."""
    pattern = KEY_SEPARATOR.join((_like(user), "%", _like(service)))
    letter = ctx.session.scalar(select(DeadLetter.id).where(
        DeadLetter.entity == "UserService", DeadLetter.state == "open", DeadLetter.ref_key.like(pattern, escape="\\"))
        .limit(1))
    if letter is not None:
        raise Blocked("UserService", f"{user} / … / {service}", letter)


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@loader("UserPackage")
def load_user_package(ctx: LoadContext) -> Loaded:
    account = ctx.account("User")
    package_id = ctx.ref("Package", "Name")
    next_bill = ctx.get("NextBillDate")
    return put(ctx, UserPackage, {"account_id": account.id, "package_id": package_id},
               {"next_bill_date": datetime.fromisoformat(next_bill) if next_bill else None})


@loader("UserService")
def load_user_service(ctx: LoadContext) -> Loaded:
    package = user_package(ctx)
    service_id = ctx.ref("Service", "Name")
    return put(ctx, UserService, {"user_package_id": package.id, "service_id": service_id},
               {"account_id": package.account_id, "optional": ctx.get("Optional") == "true"})


@loader("UserPackageAttributeDiscount")
def load_discount(ctx: LoadContext) -> Loaded:
    package = user_package(ctx)
    service = user_service(ctx, package) if ctx.get("UserService") else None
    return put(ctx, PackageDiscount, {"user_package_id": package.id, "user_service_id": service.id if service else None},
               {"discount_type": ctx.require("DiscountType"), "amount": Decimal(ctx.require("Amount"))})


@loader("UserPackageExtendedAttribute")
def load_package_attribute(ctx: LoadContext) -> Loaded:
    package = user_package(ctx)
    return put(ctx, ExtendedAttribute, {"owner_kind": "user_package", "owner_id": package.id, "name": ctx.require("Name")},
               {"value": ctx.get("Value")})


@loader("UserServiceAttribute")
def load_service_attribute(ctx: LoadContext) -> Loaded:
    service = user_service(ctx, user_package(ctx))
    return put(ctx, ExtendedAttribute, {"owner_kind": "user_service", "owner_id": service.id, "name": ctx.require("Name")},
               {"value": ctx.get("Value")})


@loader("UserServiceProfileAnswer")
def load_service_answer(ctx: LoadContext) -> Loaded:
    """Without UserServiceID every service of that name on the account gets the answer (the seed:
    "the profile answer will be completed for each of those instances"); with it, only that one."""
    account = ctx.account("User")
    question_id = ctx.ref("ProfileQuestion", "Question")
    name = ctx.require("UserService")
    service_id = ctx.ref("Service", "UserService", name)
    services = ctx.session.scalars(select(UserService).where(UserService.account_id == account.id,
                                                             UserService.service_id == service_id)
                                   .order_by(UserService.id)).all()
    wanted = ctx.get("UserServiceID")
    if wanted:
        services = [s for s in services if s.id == int(wanted)]
        if not services:
            raise RuleViolation(f"user service #{wanted} is not one of account {account.name!r}'s {name!r} services",
                                field="UserServiceID", value=wanted, hint="leave UserServiceID out to answer every one")
    if not services:
        _raise_if_any_service_parked(ctx, account.name, name)
        raise UnknownReference(f"account {account.name!r} has no {name!r} service", field="UserService", value=name,
                               hint="load its UserService first")
    loaded = [put(ctx, ProfileAnswer, {"account_id": account.id, "question_id": question_id, "user_service_id": s.id},
                  {"answer": ctx.get("Answer")}) for s in services]
    outcome = "committed" if any(r.outcome == "committed" for r in loaded) else "skipped"
    return Loaded(loaded[0].target_id, outcome)
