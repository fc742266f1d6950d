"""Subscription periods (iteras), as pure functions: what a period spans, what it invoices, and
whether a subscription's periods overlap. The loader feeds them campaigns from the target.

A time-based campaign's period runs ``begin``..``end``, both days included; without ``end`` it is
the campaign's full length. An assignment-counting period has ``remaining_assignments`` (default:
the campaign's full count) and no end date. Adjusted invoicing charges price × period length ÷
campaign length, rounded half-up to the cent (the seed: "a period of 1/3 of the normal duration
will result in an invoice with 1/3 of the price")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from shared.errors import RuleViolation

CENT = Decimal("0.01")
TIME, ASSIGNMENTS = "time", "assignments"


@dataclass(frozen=True)
class Campaign:
    """What a period needs of its campaign (reference data ``Campaign``)."""

    id: int
    code: str
    kind: str
    length: int
    price: Decimal
    currency: str | None = None

    @classmethod
    def from_attributes(cls, item_id: int, code: str, attributes: dict[str, Any]) -> Campaign:
        return cls(item_id, code, str(attributes["Kind"]), int(attributes["Length"]), Decimal(str(attributes.get("Price") or 0)),
                   attributes.get("Currency"))


@dataclass(frozen=True)
class Period:
    """One settled period. ``label`` names it in messages: ``the current period`` or ``periods[2]``;
    ``prefix`` is the field path its fields are reported under (empty for the current period)."""

    label: str
    prefix: str
    campaign: Campaign
    begin: date
    end: date | None
    remaining_assignments: int | None
    invoicing: str
    renewed: bool
    invoice_amount: Decimal
    current: bool = False
    external: dict[str, Any] | None = None

    @property
    def last_day(self) -> date:
        """The last day the period covers, for overlap checks (an assignment period: its begin day)."""
        return self.end or self.begin

    def field(self, name: str) -> str:
        """The source field path of ``name`` in this period (the current period's begin is ``period_begin``)."""
        return "period_begin" if self.current and name == "begin" else f"{self.prefix}{name}"

    def describe(self) -> str:
        span = f"{self.begin}…{self.end}" if self.end else f"from {self.begin}"
        return f"{self.label} ({span}, {self.campaign.code})"


def settle_period(label: str, prefix: str, campaign: Campaign, begin: date, end: date | None, remaining: int | None,
                  invoicing: str, renewed: bool, *, current: bool = False,
                  external: dict[str, Any] | None = None) -> Period:
    """Apply the campaign's kind to one period; RuleViolation names the period and field."""
    if campaign.kind == ASSIGNMENTS and end is not None:
        raise RuleViolation(f"{label} has an end ({end}) but campaign {campaign.code!r} counts assignments",
                            field=f"{prefix}end", value=end.isoformat(),
                            hint="give remaining_assignments for assignment-counting campaigns; end is for time-based ones")
    if campaign.kind == TIME and remaining is not None:
        raise RuleViolation(f"{label} has remaining_assignments ({remaining}) but campaign {campaign.code!r} is time-based",
                            field=f"{prefix}remaining_assignments", value=str(remaining),
                            hint="give end for time-based campaigns; remaining_assignments is for assignment-counting ones")
    if campaign.kind == TIME:
        end = end or begin + timedelta(days=campaign.length - 1)
        if end < begin:
            raise RuleViolation(f"{label} ends ({end}) before it begins ({begin})", field=f"{prefix}end",
                                value=end.isoformat(), hint="begin must be on or before end")
    else:
        remaining = remaining or campaign.length
    amount = invoice_amount(campaign, invoicing, period_length(campaign, begin, end, remaining))
    return Period(label, prefix, campaign, begin, end, remaining, invoicing, renewed, amount, current, external)


def period_length(campaign: Campaign, begin: date, end: date | None, remaining: int | None) -> int:
    """Days (both ends included) for a time-based period, assignments for a counting one."""
    if campaign.kind == TIME:
        assert end is not None
        return (end - begin).days + 1
    assert remaining is not None
    return remaining


def invoice_amount(campaign: Campaign, invoicing: str, length: int) -> Decimal:
    """What the period invoices: the price, nothing, or the price in proportion to its length."""
    if invoicing == "none":
        return Decimal("0.00")
    if invoicing == "full":
        return campaign.price.quantize(CENT, ROUND_HALF_UP)
    return (campaign.price * length / campaign.length).quantize(CENT, ROUND_HALF_UP)


def refuse_overlaps(periods: list[Period]) -> None:
    """No two periods of a subscription may share a day (the seed: "make sure there's no overlap")."""
    ordered = sorted(periods, key=lambda p: (p.begin, p.last_day))
    reach: Period | None = None
    for period in ordered:
        if reach is not None and period.begin <= reach.last_day:
            later = period
            raise RuleViolation(f"{later.describe()} overlaps {reach.describe()}", field=later.field("begin"),
                                value=later.begin.isoformat(),
                                hint="historical periods must not overlap each other or the current period")
        if reach is None or period.last_day > reach.last_day:
            reach = period
