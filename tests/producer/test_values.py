"""Typed values of the text formats: dates in the run's order, booleans, numbers, amounts."""

from __future__ import annotations

from decimal import Decimal

import pytest

from producer.readers.values import parse_amount, parse_bool, parse_date, parse_decimal, parse_int, parse_text
from shared.errors import InvalidValue

# --- dates ------------------------------------------------------------------------------------------


def test_month_first_by_default_reading() -> None:
    assert parse_date("CreatedDate", "3/4/2007", day_first=False) == "2007-03-04"


def test_day_first() -> None:
    assert parse_date("CreatedDate", "3/4/2007", day_first=True) == "2007-04-03"


@pytest.mark.parametrize(("text", "month_first", "day_first"), [
    ("1/15/2007", "2007-01-15", None),
    ("15/1/2007", None, "2007-01-15"),
    ("12/31/1999", "1999-12-31", None),
    ("01/02/2010", "2010-01-02", "2010-02-01"),
    ("2/29/2008", "2008-02-29", None),
    (" 3/4/2007 ", "2007-03-04", "2007-04-03"),
])
def test_date_orders(text: str, month_first: str | None, day_first: str | None) -> None:
    for flag, expected in ((False, month_first), (True, day_first)):
        if expected is None:
            with pytest.raises(InvalidValue):
                parse_date("D", text, day_first=flag)
        else:
            assert parse_date("D", text, day_first=flag) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("3/4/2007 1:05:09 PM", "2007-03-04T13:05:09"),
    ("3/4/2007 1:05:09 AM", "2007-03-04T01:05:09"),
    ("3/4/2007 12:00:00 AM", "2007-03-04T00:00:00"),
    ("3/4/2007 12:30:15 AM", "2007-03-04T00:30:15"),
    ("3/4/2007 12:00:00 PM", "2007-03-04T12:00:00"),
    ("3/4/2007 12:59:59 PM", "2007-03-04T12:59:59"),
    ("3/4/2007 11:59:59 PM", "2007-03-04T23:59:59"),
    ("3/4/2007 11:59:59 pm", "2007-03-04T23:59:59"),
    ("3/4/2007 1:05 PM", "2007-03-04T13:05:00"),
    ("3/4/2007 1:05:09PM", "2007-03-04T13:05:09"),
    ("3/4/2007 13:05:09", "2007-03-04T13:05:09"),
    ("3/4/2007 0:00:00", "2007-03-04T00:00:00"),
])
def test_dates_with_times(text: str, expected: str) -> None:
    assert parse_date("CreatedDate", text, day_first=False) == expected


def test_day_first_with_time() -> None:
    assert parse_date("CreatedDate", "3/4/2007 12:00:00 AM", day_first=True) == "2007-04-03T00:00:00"


@pytest.mark.parametrize("text", [
    "3/4/2007 13:00:00 PM", "3/4/2007 0:30:00 AM", "3/4/2007 24:00:00", "3/4/2007 10:60:00", "3/4/2007 10:00:60",
])
def test_impossible_times(text: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        parse_date("CreatedDate", text, day_first=False)
    assert caught.value.field == "CreatedDate"
    assert caught.value.value == text


@pytest.mark.parametrize(("text", "day_first"), [
    ("2/30/2007", False), ("2/29/2007", False), ("13/1/2007", False), ("4/31/2007", False), ("0/10/2007", False),
    ("3/0/2007", False), ("31/4/2007", True), ("1/13/2007", True), ("30/2/2007", True),
])
def test_impossible_dates_are_errors_never_rolled_over(text: str, day_first: bool) -> None:
    with pytest.raises(InvalidValue) as caught:
        parse_date("CreatedDate", text, day_first=day_first)
    err = caught.value
    assert err.field == "CreatedDate"
    assert err.value == text
    assert "CreatedDate" in str(err) and repr(text) in str(err)
    assert ("D/M/YYYY" if day_first else "M/D/YYYY") in str(err), "the message says which order was used"


@pytest.mark.parametrize("text", ["2007-03-04", "March 4, 2007", "3-4-2007", "3/4/07", "", "3/4/2007 noon", "3/4/2007T10:00"])
def test_non_dates(text: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        parse_date("PeriodStart", text, day_first=False)
    assert caught.value.field == "PeriodStart"
    assert caught.value.value == text
    assert caught.value.hint and "M/D/YYYY" in caught.value.hint


# --- booleans ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("True", "true"), ("true", "true"), ("TRUE", "true"), ("1", "true"), (" True ", "true"),
    ("False", "false"), ("false", "false"), ("FALSE", "false"), ("0", "false"),
])
def test_booleans(text: str, expected: str) -> None:
    assert parse_bool("Printed", text) == expected


@pytest.mark.parametrize("text", ["yes", "no", "2", "T", "", "-1", "truee"])
def test_not_booleans(text: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        parse_bool("Printed", text)
    assert caught.value.field == "Printed" and caught.value.value == text
    assert repr(text) in str(caught.value)


# --- numbers and amounts ----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [("26.7", "26.7"), ("2.0000", "2.0000"), ("0", "0"), (" 10.50 ", "10.50"),
                                                ("0.1", "0.1"), ("123456789012.3456", "123456789012.3456")])
def test_amounts_are_exact_decimals(text: str, expected: str) -> None:
    out = parse_amount("Debit", text)
    assert out == expected
    assert Decimal(out) == Decimal(text.strip()), "no float rounding"


@pytest.mark.parametrize("text", ["123456789012.345678", "0.00001", "100000000000000"])
def test_amounts_beyond_four_places_or_the_column_size_are_refused(text: str) -> None:
    with pytest.raises(InvalidValue):
        parse_amount("Debit", text)


@pytest.mark.parametrize("text", ["-1", "-26.70", "-0.01"])
def test_negative_amount_is_an_error(text: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        parse_amount("Debit", text)
    err = caught.value
    assert err.field == "Debit" and err.value == text
    assert "negative" in str(err) and "Debit" in str(err)


@pytest.mark.parametrize("text", ["abc", "1,50", "NaN", "Infinity", "-Infinity", "$5", ""])
def test_amount_that_is_not_a_number(text: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        parse_amount("Credit", text)
    assert caught.value.field == "Credit" and caught.value.value == text


def test_decimal_allows_negative_values() -> None:
    assert parse_decimal("Rate1", "-0.05") == "-0.05"
    assert parse_decimal("Rate1", "0.0800") == "0.0800"


@pytest.mark.parametrize(("text", "expected"), [("7", "7"), (" 28 ", "28"), ("007", "7"), ("-3", "-3")])
def test_ints(text: str, expected: str) -> None:
    assert parse_int("BillDay", text) == expected


@pytest.mark.parametrize("text", ["7.5", "seven", "", "1e3"])
def test_not_ints(text: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        parse_int("BillDay", text)
    assert caught.value.field == "BillDay" and caught.value.value == text


def test_text_is_kept_verbatim() -> None:
    assert parse_text("Name", "  Smith & Sons  ") == "  Smith & Sons  "


def test_a_remembered_date_still_names_the_field_and_the_order_it_was_read_in() -> None:
    """Conversions are remembered per text and order: the error of a value met again names the field
    it is met in, and the other order reads the same text its own way."""
    assert parse_date("Date", "3/4/2007", day_first=False) == "2007-03-04"
    assert parse_date("Date", "3/4/2007", day_first=True) == "2007-04-03"
    for field in ("CreatedDate", "NextBillDate"):
        with pytest.raises(InvalidValue) as refused:
            parse_date(field, "2/30/2007", day_first=False)
        assert str(refused.value).startswith(f"{field} '2/30/2007' is not a real date")
        assert refused.value.field == field and refused.value.value == "2/30/2007"
