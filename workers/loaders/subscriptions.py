"""Subscription billing (the iteras format): ``Customer``, ``Subscription`` with its periods,
``CustomerPayment`` and ``CustomerOverride``.

Customers keep the id the old system gave them (or the one the producer assigned, in file order);
every other record names its customer by that id. Subscriptions are found by their old id."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, select

from shared.derived import ASSIGNED_ID, MANUAL_VERIFICATION
from shared.dialects import dialect_of
from shared.errors import Conflict, MissingField, RuleViolation, UnknownReference
from shared.hints import hint_for
from shared.schema.control import Run
from shared.schema.subscriptions import Customer, CustomerOverride, CustomerPayment, Subscription, SubscriptionPeriod
from shared.schema.target import ReferenceItem
from workers.context import HINT_CANDIDATES, LoadContext, Loaded
from workers.loaders import loader
from workers.periods import Campaign, Period, refuse_overlaps, settle_period


@loader("Customer")
def load_customer(ctx: LoadContext) -> Loaded:
    given, assigned = ctx.get("id"), ctx.get(ASSIGNED_ID)
    if not given and not assigned:
        raise MissingField("the customer has no id and none was assigned at staging", field="id", value="",
                           hint="run the file again: cutover assigns ids to customers without one while staging")
    customer_id = int(given or assigned or 0)
    address = ctx.get("address")
    created = ctx.get("created")
    values: dict[str, Any] = {
        "created": datetime.fromisoformat(created) if created else None, "name": ctx.get("name"),
        "company": ctx.get("company"), "email": ctx.get("email"), "phone": ctx.get("phone"),
        "address": json.loads(address) if address else None, "id_assigned": not given,
    }
    existing = ctx.session.get(Customer, customer_id)
    if existing is not None:
        if not given:
            raise Conflict(f"customer id {customer_id}, assigned to this customer at staging, was taken meanwhile",
                           field="id", value=str(customer_id),
                           hint="run the file again: ids are assigned above the highest in the database")

        def update() -> None:
            for column, value in values.items():
                setattr(existing, column, value)
        return ctx.existing(customer_id, update, same=all(getattr(existing, c) == v for c, v in values.items()))
    ctx.session.add(Customer(id=customer_id, **values))
    ctx.session.flush()
    dialect_of(ctx.session).advance_sequence(ctx.session, Customer.__tablename__, "id", customer_id)
    return Loaded(customer_id)


def _customer(ctx: LoadContext) -> Customer:
    """The customer the record names by ``id``; blocked when it waits in the dead-letter store."""
    wanted = ctx.require("id")
    found = ctx.session.get(Customer, int(wanted))
    if found is not None:
        return found
    ctx.raise_if_parked("Customer", wanted)
    raise UnknownReference(f"customer {wanted} not found", field="id", value=wanted,
                           hint="load its createcustomer first, in this run or an earlier one")


def _campaign(ctx: LoadContext, field: str, code: str) -> Campaign:
    item_id = ctx.ref("Campaign", field, code)
    item = ctx.session.get_one(ReferenceItem, item_id)
    return Campaign.from_attributes(item_id, code, item.attributes)


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


def _periods(ctx: LoadContext, campaign: Campaign) -> list[Period]:
    """The current period from the record's top-level fields, then each historical one."""
    begin = _day(ctx.get("period_begin")) or _run_day(ctx)
    remaining = ctx.get("remaining_assignments")
    current = settle_period("the current period", "", campaign, begin, _day(ctx.get("end")),
                            int(remaining) if remaining else None, ctx.require("invoicing"), ctx.get("renewed") == "true",
                            current=True)
    out = [current]
    for index, raw in enumerate(json.loads(ctx.get("periods") or "[]")):
        label = f"periods[{index}]"
        try:
            own, external = _period_references(ctx, label, raw, campaign)
        except UnknownReference as missing:  # say which period names it, not only which field
            raise UnknownReference(f"{label}: {missing.message}", field=missing.field, value=missing.value,
                                   hint=missing.hint) from None
        remaining = raw.get("remaining_assignments")
        out.append(settle_period(label, f"{label}.", own, date.fromisoformat(raw["begin"]), _day(raw.get("end")),
                                 int(remaining) if remaining else None, raw.get("invoicing", "full"),
                                 raw.get("renewed") == "true", external=external))
    refuse_overlaps(out)
    return out


def _period_references(ctx: LoadContext, label: str, raw: dict[str, Any],
                       campaign: Campaign) -> tuple[Campaign, dict[str, Any] | None]:
    """A historical period's campaign (the subscription's unless it names its own) and its
    external invoicing, whose currency must be configured."""
    own = _campaign(ctx, f"{label}.campaign", raw["campaign"]) if raw.get("campaign") else campaign
    external = raw.get("external_invoicing")
    if external and external.get("currency"):
        ctx.ref("Currency", f"{label}.external_invoicing.currency", external["currency"])
    return own, external


def _run_day(ctx: LoadContext) -> date:
    """A subscription without period_begin starts its period the day its run was staged."""
    run = ctx.session.get(Run, ctx.envelope.run_id)
    return run.created_at.date() if run is not None else date.today()


def _period_row(subscription_id: int, period: Period) -> SubscriptionPeriod:
    ext = period.external or {}
    rate = ext.get("tax_rate")
    return SubscriptionPeriod(
        subscription_id=subscription_id, campaign_id=period.campaign.id, current=period.current, begin=period.begin,
        end=period.end, remaining_assignments=period.remaining_assignments, invoicing=period.invoicing,
        renewed=period.renewed, invoice_amount=period.invoice_amount, currency=period.campaign.currency,
        external_invoiced=_int(ext.get("invoiced")), external_credited=_int(ext.get("credited")),
        external_paid=_int(ext.get("paid")), external_refunded=_int(ext.get("refunded")),
        external_currency=ext.get("currency"), external_tax_rate=None if rate is None else Decimal(rate),
    )


def _int(text: str | None) -> int | None:
    return None if text is None else int(text)


@loader("Subscription")
def load_subscription(ctx: LoadContext) -> Loaded:
    customer = _customer(ctx)
    campaign = _campaign(ctx, "campaign", ctx.require("campaign"))
    periods = _periods(ctx, campaign)
    source_id = ctx.require("subscription_id")
    manual = ctx.get(MANUAL_VERIFICATION) == "true"
    existing = ctx.session.scalar(select(Subscription).where(Subscription.source_id == source_id))
    if existing is not None:
        found = existing

        def update() -> None:
            found.customer_id, found.campaign_id, found.manual_invoice_verification = customer.id, campaign.id, manual
            ctx.session.execute(delete(SubscriptionPeriod).where(SubscriptionPeriod.subscription_id == found.id))
            ctx.session.add_all(_period_row(found.id, p) for p in periods)
        return ctx.existing(found.id, update)
    subscription = Subscription(source_id=source_id, customer_id=customer.id, campaign_id=campaign.id,
                                manual_invoice_verification=manual)
    ctx.session.add(subscription)
    ctx.session.flush()
    ctx.session.add_all(_period_row(subscription.id, p) for p in periods)
    return Loaded(subscription.id)


@loader("CustomerPayment")
def load_customer_payment(ctx: LoadContext) -> Loaded:
    customer = _customer(ctx)
    currency = ctx.require("currency")
    ctx.ref("Currency", "currency", currency)
    payment = CustomerPayment(source_key=ctx.envelope.key, customer_id=customer.id, amount_minor=int(ctx.require("amount")),
                              currency=currency, method=ctx.require("method"))
    ctx.session.add(payment)
    ctx.session.flush()
    return Loaded(payment.id)


def _subscription_of(ctx: LoadContext, customer: Customer) -> Subscription | None:
    """The subscription the override names, which must be the customer's own."""
    source_id = ctx.get("subscription_id")
    if not source_id:
        return None
    found = ctx.session.scalar(select(Subscription).where(Subscription.source_id == source_id))
    if found is None:
        ctx.raise_if_parked("Subscription", source_id)
        own = ctx.session.scalars(select(Subscription.source_id).where(Subscription.customer_id == customer.id)
                                  .limit(HINT_CANDIDATES)).all()
        listed = f"customer {customer.id} has {', '.join(own)}" if own else f"customer {customer.id} has no subscriptions"
        raise UnknownReference(f"subscription {source_id!r} not found", field="subscription_id", value=source_id,
                               hint=hint_for(source_id, own) or listed)
    if found.customer_id != customer.id:
        raise RuleViolation(f"subscription {source_id!r} belongs to customer {found.customer_id}, not to customer {customer.id}",
                            field="subscription_id", value=source_id,
                            hint="an override may only name a subscription of the same customer")
    return found


@loader("CustomerOverride")
def load_customer_override(ctx: LoadContext) -> Loaded:
    customer = _customer(ctx)
    subscription = _subscription_of(ctx, customer)
    address, weekdays = ctx.get("address"), ctx.get("weekdays")
    override = CustomerOverride(
        source_key=ctx.envelope.key, customer_id=customer.id, subscription_id=subscription.id if subscription else None,
        override_type=ctx.require("override_type"), begin=date.fromisoformat(ctx.require("begin")), end=_day(ctx.get("end")),
        address=json.loads(address) if address else None, weekdays=json.loads(weekdays) if weekdays else None,
    )
    ctx.session.add(override)
    ctx.session.flush()
    return Loaded(override.id)
