"""Subscription periods (``workers/periods.py``): what a period spans for time-based and
assignment-counting campaigns and what it refuses, what it invoices (full, none, adjusted — worked
by hand, rounded half-up at the cent), and overlaps between a subscription's periods."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from shared.errors import RuleViolation
from workers.periods import Campaign, Period, invoice_amount, period_length, refuse_overlaps, settle_period

D = Decimal
AVIS_12M = Campaign(1, "AVIS-12M", "time", 365, D("2400.00"), "DKK")
AVIS_3M = Campaign(2, "AVIS-3M", "time", 90, D("690.00"), "DKK")
MAG_10 = Campaign(3, "MAG-10", "assignments", 10, D("495.00"), "DKK")


def day(text: str) -> date:
    return date.fromisoformat(text)


def historical(index: int, campaign: Campaign, begin: str, end: str | None = None, remaining: int | None = None,
               invoicing: str = "none") -> Period:
    """``periods[index]`` as the loader settles it."""
    return settle_period(f"periods[{index}]", f"periods[{index}].", campaign, day(begin), day(end) if end else None,
                         remaining, invoicing, False)


def current(campaign: Campaign, begin: str, end: str | None = None, remaining: int | None = None,
            invoicing: str = "full") -> Period:
    """The subscription's current period (its fields are the record's top-level ones)."""
    return settle_period("the current period", "", campaign, day(begin), day(end) if end else None, remaining, invoicing, True,
                         current=True)


def refusal(periods: list[Period]) -> RuleViolation:
    with pytest.raises(RuleViolation) as caught:
        refuse_overlaps(periods)
    return caught.value


# --- time-based campaigns ---------------------------------------------------------------------------


@pytest.mark.parametrize(("campaign", "begin", "end"), [
    (AVIS_12M, "2026-04-01", "2027-03-31"),
    (AVIS_12M, "2024-01-01", "2024-12-30"),  # a leap year: 365 days end a day before New Year's Eve
    (AVIS_3M, "2026-03-01", "2026-05-29"),   # 31 + 30 + 29
    (AVIS_3M, "2025-12-01", "2026-02-28"),   # 31 + 31 + 28
])
def test_time_period_without_end_runs_the_campaigns_length(campaign: Campaign, begin: str, end: str) -> None:
    period = historical(0, campaign, begin)
    assert (period.begin, period.end) == (day(begin), day(end))
    assert period_length(campaign, period.begin, period.end, None) == campaign.length
    assert period.remaining_assignments is None
    assert period.last_day == day(end)


def test_time_period_keeps_its_end_and_may_be_one_day() -> None:
    shortened = historical(1, AVIS_3M, "2026-03-01", "2026-03-31")
    assert (shortened.begin, shortened.end) == (day("2026-03-01"), day("2026-03-31"))
    one_day = historical(2, AVIS_3M, "2026-04-01", "2026-04-01")
    assert one_day.end == one_day.begin == day("2026-04-01")
    assert period_length(AVIS_3M, one_day.begin, one_day.end, None) == 1, "both the begin and the end day count"


def test_time_period_ending_before_it_begins_is_refused_naming_the_period_and_field() -> None:
    with pytest.raises(RuleViolation) as caught:
        historical(2, AVIS_3M, "2026-03-01", "2026-02-28")
    error = caught.value
    assert (error.field, error.value) == ("periods[2].end", "2026-02-28")
    assert "periods[2]" in str(error)
    assert "2026-02-28" in str(error) and "2026-03-01" in str(error)


def test_current_period_ending_before_it_begins_is_refused_on_end() -> None:
    with pytest.raises(RuleViolation) as caught:
        current(AVIS_12M, "2026-10-01", "2026-09-30")
    assert caught.value.field == "end"
    assert "the current period" in str(caught.value)


@pytest.mark.parametrize(("settle", "field"), [
    (lambda: historical(0, AVIS_3M, "2025-01-01", remaining=3), "periods[0].remaining_assignments"),
    (lambda: current(AVIS_12M, "2026-01-01", remaining=6), "remaining_assignments"),
], ids=["historical", "current"])
def test_remaining_assignments_on_a_time_campaign_is_refused(settle: object, field: str) -> None:
    assert callable(settle)
    with pytest.raises(RuleViolation) as caught:
        settle()
    error = caught.value
    assert error.field == field
    assert "time-based" in str(error) and error.hint is not None and "end" in error.hint


# --- assignment-counting campaigns ------------------------------------------------------------------


def test_assignment_period_remaining_defaults_to_the_campaigns_count() -> None:
    period = current(MAG_10, "2026-11-10")
    assert (period.remaining_assignments, period.end) == (10, None)
    assert period.last_day == day("2026-11-10"), "an assignment period covers its begin day for overlaps"
    assert historical(0, MAG_10, "2026-09-15", remaining=4).remaining_assignments == 4


@pytest.mark.parametrize(("settle", "field", "label"), [
    (lambda: historical(1, MAG_10, "2025-01-01", "2025-06-30"), "periods[1].end", "periods[1]"),
    (lambda: current(MAG_10, "2026-01-01", "2026-06-30"), "end", "the current period"),
], ids=["historical", "current"])
def test_end_on_an_assignment_campaign_is_refused(settle: object, field: str, label: str) -> None:
    assert callable(settle)
    with pytest.raises(RuleViolation) as caught:
        settle()
    error = caught.value
    assert error.field == field
    assert label in str(error) and "MAG-10" in str(error)
    assert error.hint is not None and "remaining_assignments" in error.hint


# --- invoice amounts --------------------------------------------------------------------------------


def test_full_and_none() -> None:
    assert invoice_amount(AVIS_12M, "full", 120) == D("2400.00")
    assert invoice_amount(AVIS_12M, "none", 365) == D("0.00")
    assert str(invoice_amount(Campaign(9, "X", "time", 30, D("99.9")), "full", 30)) == "99.90", "always to the cent"
    assert str(invoice_amount(Campaign(9, "X", "time", 30, D("99")), "none", 30)) == "0.00"


@pytest.mark.parametrize(("campaign", "length", "amount"), [
    (AVIS_12M, 120, "789.04"),  # 2400.00 × 120 / 365 = 789.0410…
    (AVIS_3M, 30, "230.00"),    # 690.00 × 30 / 90
    (MAG_10, 4, "198.00"),      # 495.00 × 4 / 10
    (MAG_10, 3, "148.50"),      # 495.00 × 3 / 10
    (AVIS_12M, 92, "604.93"),   # 2400.00 × 92 / 365 = 604.9315…
    (AVIS_12M, 365, "2400.00"),
    (AVIS_12M, 1, "6.58"),      # 2400.00 / 365 = 6.5753…
    (Campaign(9, "THIRDS", "time", 3, D("100.00")), 1, "33.33"),
    (Campaign(9, "THIRDS", "time", 3, D("100.00")), 2, "66.67"),
])
@pytest.mark.parametrize("invoicing", ["adjusted_begin", "adjusted_end"])
def test_adjusted_is_price_times_length_over_campaign_length(campaign: Campaign, length: int, amount: str,
                                                             invoicing: str) -> None:
    result = invoice_amount(campaign, invoicing, length)
    assert str(result) == amount, f"{campaign.price} × {length} / {campaign.length}"


@pytest.mark.parametrize(("price", "length", "of", "amount"), [
    ("100.01", 1, 2, "50.01"),  # 50.005: half-up, where half-even would give 50.00
    ("1.25", 1, 2, "0.63"),     # 0.625
    ("0.05", 1, 2, "0.03"),     # 0.025
    ("100.03", 1, 2, "50.02"),  # 50.015: half-up and half-even agree
    ("36.50", 1, 4, "9.13"),    # 9.125
])
def test_adjusted_rounds_half_up_at_the_cent(price: str, length: int, of: int, amount: str) -> None:
    assert str(invoice_amount(Campaign(9, "HALF", "time", of, D(price)), "adjusted_end", length)) == amount


def test_settled_period_carries_its_invoice_amount() -> None:
    # 2026-04-01..2026-07-29 is 30 + 31 + 30 + 29 = 120 days
    assert current(AVIS_12M, "2026-04-01", "2026-07-29", invoicing="adjusted_end").invoice_amount == D("789.04")
    assert historical(1, AVIS_3M, "2026-03-01", "2026-03-30", invoicing="adjusted_begin").invoice_amount == D("230.00")
    assert current(MAG_10, "2026-09-15", remaining=4, invoicing="adjusted_begin").invoice_amount == D("198.00")
    assert current(MAG_10, "2026-09-15", invoicing="adjusted_begin").invoice_amount == D("495.00"), "all 10 remaining"
    assert historical(0, AVIS_12M, "2025-04-01", invoicing="none").invoice_amount == D("0.00")
    assert current(AVIS_3M, "2026-10-01", invoicing="full").invoice_amount == D("690.00")


def test_settled_period_keeps_what_the_loader_stores() -> None:
    external = {"invoiced": "69000", "currency": "DKK"}
    period = settle_period("periods[1]", "periods[1].", AVIS_3M, day("2026-03-01"), day("2026-03-31"), None, "none", True,
                           external=external)
    assert (period.label, period.prefix, period.campaign, period.invoicing, period.renewed, period.current) == (
        "periods[1]", "periods[1].", AVIS_3M, "none", True, False)
    assert period.external == external
    assert period.describe() == "periods[1] (2026-03-01…2026-03-31, AVIS-3M)"
    assert current(MAG_10, "2026-11-10").describe() == "the current period (from 2026-11-10, MAG-10)"


def test_field_paths_of_a_period() -> None:
    assert current(AVIS_12M, "2026-04-01").field("begin") == "period_begin"
    assert current(AVIS_12M, "2026-04-01").field("end") == "end"
    assert historical(2, AVIS_3M, "2025-01-01").field("begin") == "periods[2].begin"


# --- campaigns --------------------------------------------------------------------------------------


def test_campaign_from_reference_attributes() -> None:
    campaign = Campaign.from_attributes(7, "AVIS-12M", {"Kind": "time", "Length": "365", "Price": "2400.00", "Currency": "DKK"})
    assert campaign == Campaign(7, "AVIS-12M", "time", 365, D("2400.00"), "DKK")
    free = Campaign.from_attributes(8, "AVIS-PROVE", {"Kind": "time", "Length": 14})
    assert (free.price, free.currency) == (D("0"), None)
    assert Campaign.from_attributes(9, "X", {"Kind": "assignments", "Length": "26", "Price": 0.1}).price == D("0.1"), (
        "a float price is taken as written, not as its binary value")


# --- overlaps ---------------------------------------------------------------------------------------


def test_adjacent_periods_do_not_overlap() -> None:
    refuse_overlaps([
        historical(0, AVIS_3M, "2025-12-01", "2026-02-28"),
        historical(1, AVIS_3M, "2026-03-01", "2026-03-31"),
        current(AVIS_12M, "2026-04-01"),
    ])
    refuse_overlaps([current(AVIS_12M, "2026-04-01")])
    refuse_overlaps([])


def test_assignment_periods_cover_their_begin_day() -> None:
    refuse_overlaps([historical(0, AVIS_3M, "2026-06-01", "2026-08-31"), current(MAG_10, "2026-09-01")])
    error = refusal([historical(0, AVIS_3M, "2026-06-01", "2026-09-01"), current(MAG_10, "2026-09-01")])
    assert error.field == "period_begin"
    error = refusal([historical(0, MAG_10, "2026-09-01", remaining=3), current(MAG_10, "2026-09-01")])
    assert "2026-09-01" in str(error)


def test_sharing_one_day_is_refused_naming_both_periods() -> None:
    error = refusal([
        historical(0, AVIS_3M, "2025-12-01", "2026-03-01"),
        historical(1, AVIS_3M, "2026-03-01", "2026-03-31"),
        current(AVIS_12M, "2026-04-01"),
    ])
    message = str(error)
    assert "periods[1] (2026-03-01…2026-03-31, AVIS-3M)" in message
    assert "periods[0] (2025-12-01…2026-03-01, AVIS-3M)" in message
    assert (error.field, error.value) == ("periods[1].begin", "2026-03-01")
    assert error.hint is not None and "overlap" in error.hint


def test_unsorted_periods_still_overlap() -> None:
    periods = [
        current(AVIS_12M, "2026-04-01"),
        historical(0, AVIS_3M, "2026-03-01", "2026-03-31"),
        historical(1, AVIS_3M, "2025-12-01", "2026-03-10"),
    ]
    error = refusal(periods)
    assert "periods[0]" in str(error) and "periods[1]" in str(error)
    assert error.field == "periods[0].begin", "the later-beginning period is the one reported"
    assert refusal(list(reversed(periods))).field == "periods[0].begin", "the input order does not matter"


def test_a_long_early_period_containing_a_later_short_one() -> None:
    error = refusal([
        historical(0, AVIS_12M, "2025-01-01", "2025-12-31"),
        historical(1, AVIS_3M, "2025-03-01", "2025-03-31"),
        historical(2, AVIS_3M, "2025-06-01", "2025-06-30"),
        current(AVIS_12M, "2026-01-01"),
    ])
    assert error.field == "periods[1].begin"
    assert "periods[0] (2025-01-01…2025-12-31, AVIS-12M)" in str(error)


def test_periods_beginning_the_same_day_overlap() -> None:
    error = refusal([
        historical(0, AVIS_12M, "2025-01-01", "2025-12-31"),
        historical(1, AVIS_3M, "2025-01-01", "2025-01-31"),
    ])
    assert error.field == "periods[0].begin", "the one reaching further is reported against the shorter"
    assert "periods[1] (2025-01-01…2025-01-31, AVIS-3M)" in str(error)


def test_current_period_overlapping_a_historical_one_is_reported_on_period_begin() -> None:
    error = refusal([
        historical(0, AVIS_12M, "2025-05-01", "2026-04-30"),
        current(AVIS_12M, "2026-04-01"),
    ])
    assert (error.field, error.value) == ("period_begin", "2026-04-01")
    assert "the current period (2026-04-01…2027-03-31, AVIS-12M)" in str(error)
    assert "periods[0] (2025-05-01…2026-04-30, AVIS-12M)" in str(error)


def test_historical_period_overlapping_the_current_one_from_inside() -> None:
    error = refusal([
        current(AVIS_12M, "2026-01-01"),
        historical(0, AVIS_3M, "2026-02-01", "2026-04-30"),
    ])
    assert error.field == "periods[0].begin"
    assert "the current period" in str(error)
