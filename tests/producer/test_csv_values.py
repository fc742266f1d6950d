"""Field checks of the csv format: the Luhn check on the usual test card numbers (a changed digit and
two swapped digits fail); card numbers with spaces and dashes normalised, wrong lengths and other
characters refused, and no message ever showing the number; ABA routing numbers; bank account
numbers; payment method and account type names (synonyms, any case); expiry months and years."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from producer.readers.csv_values import (
    account_type,
    bank_account_number,
    card_number,
    expiry_month,
    expiry_year,
    luhn_ok,
    payment_method,
    routing_number,
    routing_ok,
)
from shared.errors import InvalidValue

TEST_CARDS = ["4111111111111111", "5555555555554444", "378282246310005", "6011111111111117"]
ROUTING = ["011000015", "021000021", "026009593"]


def invalid(check: Callable[[str, str], str], text: str, field: str = "card_number") -> InvalidValue:
    """The error of a value that must be refused; it names the field."""
    with pytest.raises(InvalidValue) as caught:
        check(field, text)
    assert caught.value.field == field
    assert str(caught.value).startswith(field), str(caught.value)
    return caught.value


def changed_digit(digits: str, at: int) -> str:
    return digits[:at] + str((int(digits[at]) + 1) % 10) + digits[at + 1:]


def swapped(digits: str) -> str:
    """The first two adjacent digits that differ, swapped (not 0 and 9: the one swap Luhn cannot see)."""
    for at in range(len(digits) - 1):
        pair = {digits[at], digits[at + 1]}
        if len(pair) == 2 and pair != {"0", "9"}:
            return digits[:at] + digits[at + 1] + digits[at] + digits[at + 2:]
    raise AssertionError(f"no swappable pair in {digits}")


def with_check_digit(body: str) -> str:
    """``body`` plus the digit that makes it pass Luhn."""
    return next(body + d for d in "0123456789" if luhn_ok(body + d))


# --- Luhn -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("number", TEST_CARDS, ids=["visa", "mastercard", "amex", "discover"])
def test_luhn_passes_the_test_card_numbers(number: str) -> None:
    assert luhn_ok(number)
    assert card_number("card_number", number) == number


@pytest.mark.parametrize("number", TEST_CARDS, ids=["visa", "mastercard", "amex", "discover"])
@pytest.mark.parametrize("at", [0, 7, -1], ids=["first", "middle", "check-digit"])
def test_luhn_fails_one_changed_digit(number: str, at: int) -> None:
    wrong = changed_digit(number, at % len(number))
    assert not luhn_ok(wrong)
    error = invalid(card_number, wrong)
    assert "fails the Luhn check" in str(error)


@pytest.mark.parametrize("number", TEST_CARDS, ids=["visa", "mastercard", "amex", "discover"])
def test_luhn_fails_two_adjacent_digits_swapped(number: str) -> None:
    wrong = swapped(number)
    assert wrong != number
    assert not luhn_ok(wrong)
    assert "fails the Luhn check" in str(invalid(card_number, wrong))


# --- card numbers -----------------------------------------------------------------------------------


@pytest.mark.parametrize("written", ["4111 1111 1111 1111", "4111-1111-1111-1111", " 4111 - 1111 1111-1111 ",
                                     "4111\t1111\t1111\t1111"], ids=["spaces", "dashes", "mixed", "tabs"])
def test_card_number_separators_are_removed(written: str) -> None:
    assert card_number("card_number", written) == "4111111111111111"


@pytest.mark.parametrize("length", [12, 19])
def test_card_numbers_of_12_to_19_digits_are_accepted(length: int) -> None:
    number = with_check_digit("4" + "0" * (length - 2))
    assert len(number) == length
    assert card_number("card_number", number) == number


@pytest.mark.parametrize("length", [4, 11, 20])
def test_card_number_of_wrong_length_is_refused(length: int) -> None:
    number = with_check_digit("4" + "1" * (length - 2))
    error = invalid(card_number, number)
    assert f"has {length} digits; a card number has 12–19" in str(error)


@pytest.mark.parametrize("written", ["4111.1111.1111.1111", "4111 1111 1111 111x", "", "----", "４１１１" * 4],
                         ids=["dots", "letter", "empty", "dashes-only", "fullwidth"])
def test_card_number_with_other_characters_is_refused(written: str) -> None:
    error = invalid(card_number, written)
    assert "other than digits" in str(error) or "has 0 digits" in str(error)


@pytest.mark.parametrize("written", [
    "4111 1111 1111 1112",        # Luhn
    "4111-1111-1111-1111-1111",   # too long
    "4111 1111 11",               # too short
    "4111 1111 1111 111x",        # not digits
], ids=["luhn", "too-long", "too-short", "not-digits"])
def test_card_number_messages_never_contain_the_number(written: str) -> None:
    error = invalid(card_number, written)
    text = str(error)
    digits = "".join(c for c in written if c.isdigit())
    assert digits not in text and written not in text
    assert "1111" not in text, "not even a group of its digits"
    assert error.hint is None or "1111" not in error.hint


@pytest.mark.parametrize("written", ["12345678901234567890", "12ab", "123"], ids=["too-long", "letters", "too-short"])
def test_bank_account_number_messages_never_contain_the_number(written: str) -> None:
    text = str(invalid(bank_account_number, written, "bank_account_number"))
    assert written not in text and "123" not in text


def test_bank_account_number_is_4_to_17_digits() -> None:
    assert bank_account_number("bank_account_number", "0012-3456 789") == "00123456789"
    assert bank_account_number("bank_account_number", "1234") == "1234"
    assert bank_account_number("bank_account_number", "1" * 17) == "1" * 17
    assert "has 18 digits" in str(invalid(bank_account_number, "1" * 18, "bank_account_number"))


# --- routing numbers --------------------------------------------------------------------------------


@pytest.mark.parametrize("number", ROUTING)
def test_aba_routing_numbers_pass(number: str) -> None:
    assert routing_ok(number)
    assert routing_number("routing_number", number) == number


def test_routing_number_separators_are_removed() -> None:
    assert routing_number("routing_number", " 0110-0001 5 ") == "011000015"


@pytest.mark.parametrize("number", ROUTING)
@pytest.mark.parametrize("at", [0, 4, 8])
def test_routing_number_with_a_changed_digit_fails(number: str, at: int) -> None:
    wrong = changed_digit(number, at)
    assert not routing_ok(wrong)
    error = invalid(routing_number, wrong, "routing_number")
    assert "fails the ABA routing number checksum" in str(error)
    assert error.hint is not None and "9 digits" in error.hint


@pytest.mark.parametrize("written", ["01100001", "0110000150", "", "01100001x"], ids=["8-digits", "10-digits", "empty", "letter"])
def test_routing_number_not_of_9_digits_is_refused(written: str) -> None:
    error = invalid(routing_number, written, "routing_number")
    assert "digits" in str(error)


# --- payment method and account type ----------------------------------------------------------------


@pytest.mark.parametrize(("written", "method"), [
    ("Card", "card"), ("CARD", "card"), ("credit card", "card"), (" Credit Card ", "card"), ("CreditCard", "card"),
    ("ACH", "ach"), ("ach", "ach"), ("Bank", "ach"), ("Bank Account", "ach"), ("EFT", "ach"),
])
def test_payment_method_synonyms_and_case(written: str, method: str) -> None:
    assert payment_method("payment_method", written) == method


@pytest.mark.parametrize("written", ["cheque", "", "cards", "debit"])
def test_unknown_payment_method_is_refused(written: str) -> None:
    error = invalid(payment_method, written, "payment_method")
    assert error.hint == "Card or ACH"


@pytest.mark.parametrize(("written", "kind"), [("Checking", "Checking"), ("CHECKING", "Checking"), (" checking ", "Checking"),
                                               ("savings", "Savings"), ("SaViNgS", "Savings")])
def test_account_type_any_case(written: str, kind: str) -> None:
    assert account_type("bank_account_type", written) == kind


@pytest.mark.parametrize("written", ["Current", "", "check"])
def test_unknown_account_type_is_refused(written: str) -> None:
    assert invalid(account_type, written, "bank_account_type").hint == "Checking or Savings"


# --- expiry -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("written", "month"), [("1", "1"), ("01", "1"), (" 12 ", "12"), ("7", "7")])
def test_expiry_month(written: str, month: str) -> None:
    assert expiry_month("card_expiry_month", written) == month


@pytest.mark.parametrize("written", ["0", "13", "00", "-1", "Jan", "", "1.5"])
def test_expiry_month_out_of_range_is_refused(written: str) -> None:
    assert invalid(expiry_month, written, "card_expiry_month").hint == "1 to 12"


@pytest.mark.parametrize(("check", "written"), [(expiry_month, "²"), (expiry_year, "²⁸")], ids=["month", "year"])
def test_expiry_with_superscript_digits_is_an_invalid_value(check: Callable[[str, str], str], written: str) -> None:
    invalid(check, written, "card_expiry")


@pytest.mark.parametrize(("written", "year"), [("28", "2028"), ("2028", "2028"), ("05", "2005"), (" 31 ", "2031")])
def test_expiry_year_two_digits_are_this_century(written: str, year: str) -> None:
    assert expiry_year("card_expiry_year", written) == year


@pytest.mark.parametrize("written", ["123", "8", "20281", "", "'28", "2O28"])
def test_expiry_year_not_of_two_or_four_digits_is_refused(written: str) -> None:
    assert invalid(expiry_year, written, "card_expiry_year").hint == "two or four digits"
