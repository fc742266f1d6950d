"""Money: the shared rules (Credit × Bulk, computed taxes, per-record figures), the exact ``Money``
column, and the readers' amount parsers."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from producer.readers.values import parse_amount, parse_money
from shared.db import make_engine
from shared.errors import InvalidValue
from shared.money import ZERO, Figures, credit_amount, money, source_figures, tax_on, to_money
from shared.schema.money import Money

# --- amounts and rounding ---------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [(None, "0.0000"), ("", "0.0000"), ("2", "2.0000"), ("26.7", "26.7000"),
                                                ("-15.00", "-15.0000"), ("0.0001", "0.0001")])
def test_money_reads_text_to_four_places(text: str | None, expected: str) -> None:
    assert str(money(text)) == expected


@pytest.mark.parametrize(("value", "expected"), [("0.00005", "0.0001"), ("0.00015", "0.0002"), ("0.00025", "0.0003"),
                                                 ("0.000049", "0.0000"), ("-0.00025", "-0.0003"), ("7", "7.0000")])
def test_to_money_rounds_half_up(value: str, expected: str) -> None:
    assert str(to_money(Decimal(value))) == expected


@pytest.mark.parametrize(("fields", "expected"), [
    ({"Credit": "5.00"}, "5.0000"),
    ({"Credit": "5.00", "Bulk": ""}, "5.0000"),
    ({"Credit": "5.00", "Bulk": "1"}, "5.0000"),
    ({"Credit": "3.3333", "Bulk": "3"}, "9.9999"),
    ({"Credit": "2.50", "Bulk": "12"}, "30.0000"),
    ({"Credit": "0.0005", "Bulk": "0.5"}, "0.0003"),  # 0.00025: half up, not half even
    ({"Credit": "0.0001", "Bulk": "0.5"}, "0.0001"),
    ({"Credit": "0.0001", "Bulk": "0.4"}, "0.0000"),
    ({"Credit": "10", "Bulk": "0.33333"}, "3.3333"),
    ({"Credit": "123456789012.3456", "Bulk": "2"}, "246913578024.6912"),
])
def test_credit_amount_is_credit_times_bulk(fields: dict[str, str], expected: str) -> None:
    assert str(credit_amount(fields)) == expected


@pytest.mark.parametrize(("amount", "rate", "expected"), [
    ("2.50", "0.05", "0.1300"),  # 0.125: half up, not half even
    ("2.30", "0.05", "0.1200"),  # 0.115
    ("10.05", "0.05", "0.5000"),  # 0.5025
    ("29.95", "0.15", "4.4900"),  # 4.4925
    ("0.10", "0.05", "0.0100"),  # 0.005
    ("0.09", "0.05", "0.0000"),  # 0.0045
    ("-2.50", "0.05", "-0.1300"),
    ("100", "0", "0.0000"),
])
def test_tax_on_rounds_to_the_cent_half_up(amount: str, rate: str, expected: str) -> None:
    assert str(tax_on(Decimal(amount), Decimal(rate))) == expected


# --- figures ----------------------------------------------------------------------------------------


def test_debit_figures() -> None:
    fields = {"User": "a", "Debit": "29.95", "Credit": "2.00", "Tax1": "1.50", "Tax2": "2.40", "Tax3": "0.75", "Tax4": "0.01"}
    assert source_figures("Debit", fields) == Figures(debits=Decimal("29.95"), credits=Decimal("2.00"), taxes=Decimal("4.66"))
    assert source_figures("Debit", {"User": "a", "Debit": "5"}) == Figures(debits=Decimal("5"))


def test_credit_figures_use_bulk_and_ignore_apply_tax() -> None:
    fields = {"User": "a", "Credit": "3.3333", "Bulk": "3", "ApplyTax": "true", "TaxCode": "HST"}
    assert source_figures("Credit", fields) == Figures(credits=Decimal("9.9999"))


@pytest.mark.parametrize(("amount", "expected"), [
    ("39.49", Figures(debits=Decimal("39.49"))),
    ("-15.00", Figures(credits=Decimal("15.00"))),
    ("0", Figures()),
])
def test_opening_balance_figures(amount: str, expected: Figures) -> None:
    assert source_figures("OpeningBalance", {"User": "a", "Amount": amount}) == expected


def test_payment_and_other_figures() -> None:
    assert source_figures("Payment", {"User": "a", "Credit": "20.50", "Invoice": "a-1"}) == Figures(payments=Decimal("20.50"))
    assert source_figures("CloseInvoice", {"CloseInvoice": "", "User": "a"}) == Figures()
    assert source_figures("User", {"Name": "a", "Debit": "5"}) == Figures()


def test_figures_add_and_subtract() -> None:
    a = Figures(Decimal("1.0001"), Decimal("2"), Decimal("3"), Decimal("4"))
    b = Figures(Decimal("0.0001"), Decimal("5"), Decimal("0"), Decimal("-1"))
    assert a + b == Figures(Decimal("1.0002"), Decimal("7"), Decimal("3"), Decimal("3"))
    assert a - b == Figures(Decimal("1.0000"), Decimal("-3"), Decimal("3"), Decimal("5"))
    assert a - a == Figures()
    assert Figures() + a == a
    assert (a + b).as_dict() == {"debits": Decimal("1.0002"), "credits": Decimal("7"), "taxes": Decimal("3"),
                                 "payments": Decimal("3")}
    assert Figures().as_dict() == dict.fromkeys(("debits", "credits", "taxes", "payments"), ZERO)


def test_figures_sum_exactly() -> None:
    total = sum((Figures(debits=Decimal("0.1")) for _ in range(10)), Figures())
    assert total.debits == Decimal("1") and isinstance(total.debits, Decimal)


# --- the Money column ---------------------------------------------------------------------------------

METADATA = sa.MetaData()
AMOUNTS = sa.Table("amounts", METADATA, sa.Column("id", sa.Integer, primary_key=True), sa.Column("amount", Money()))


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = make_engine("sqlite:///" + str(tmp_path / "money.db"))
    METADATA.create_all(engine)
    yield engine
    engine.dispose()


def store(engine: sa.Engine, *amounts: object) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(AMOUNTS), [{"amount": a} for a in amounts])


def stored(engine: sa.Engine) -> list[Decimal | None]:
    with engine.connect() as conn:
        return list(conn.scalars(sa.select(AMOUNTS.c.amount).order_by(AMOUNTS.c.id)))


def test_sum_is_exact_on_sqlite(engine: sa.Engine) -> None:
    store(engine, Decimal("0.1"), Decimal("0.2"))
    with engine.connect() as conn:
        total = conn.scalar(sa.select(sa.func.sum(AMOUNTS.c.amount)))
    assert isinstance(total, Decimal)
    assert total == Decimal("0.3") and str(total) == "0.3000"


@pytest.mark.parametrize("text", ["0", "0.0001", "-0.0001", "2.0000", "-12.3456", "123456789012.3456", "-123456789012.3456",
                                  "99999999999999.9999"])
def test_round_trip_is_exact_on_sqlite(engine: sa.Engine, text: str) -> None:
    store(engine, Decimal(text))
    (value,) = stored(engine)
    assert isinstance(value, Decimal)
    assert value == Decimal(text) and value.as_tuple().exponent == -4


def test_sqlite_keeps_whole_ten_thousandths(engine: sa.Engine) -> None:
    store(engine, Decimal("0.1"), Decimal("-12.3456"), "2.5", 7, None)
    with engine.connect() as conn:
        raw = list(conn.execute(sa.text("SELECT amount, typeof(amount) FROM amounts ORDER BY id")))
    assert raw == [(1000, "integer"), (-123456, "integer"), (25000, "integer"), (70000, "integer"), (None, "null")]
    assert stored(engine) == [Decimal("0.1"), Decimal("-12.3456"), Decimal("2.5"), Decimal("7"), None]


def test_sums_and_updates_in_sql_with_negatives_and_large_values(engine: sa.Engine) -> None:
    store(engine, Decimal("123456789012.3456"), Decimal("-0.0001"), Decimal("-23456789012.3455"))
    with engine.begin() as conn:
        assert conn.scalar(sa.select(sa.func.sum(AMOUNTS.c.amount))) == Decimal("100000000000.0000")
        conn.execute(sa.update(AMOUNTS).where(AMOUNTS.c.id == 2).values(amount=AMOUNTS.c.amount + Decimal("0.3")))
        assert conn.scalar(sa.select(AMOUNTS.c.amount).where(AMOUNTS.c.id == 2)) == Decimal("0.2999")
        matched = conn.scalars(sa.select(AMOUNTS.c.id).where(AMOUNTS.c.amount > Decimal("0.2998"))).all()
        assert sorted(matched) == [1, 2], "comparisons bind through the column type too"


@pytest.mark.parametrize("value", [Decimal("0.00001"), Decimal("1.23456"), "-2.00005", 0.1])
def test_more_than_four_places_is_refused_not_rounded(engine: sa.Engine, value: object) -> None:
    with pytest.raises(sa.exc.StatementError) as caught:
        store(engine, value)
    assert isinstance(caught.value.orig, ValueError)
    assert "more than 4 decimal places" in str(caught.value.orig)
    assert stored(engine) == []


def test_trailing_zeros_beyond_four_places_are_accepted(engine: sa.Engine) -> None:
    store(engine, Decimal("2.000000"))
    assert stored(engine) == [Decimal("2")]


def test_postgresql_binds_and_reads_exact_decimals() -> None:
    column, dialect = Money(), postgresql.dialect()
    bound = column.process_bind_param(Decimal("12.5"), dialect)
    assert isinstance(bound, Decimal) and str(bound) == "12.5000"
    assert str(column.process_result_value(Decimal("3.1"), dialect)) == "3.1000"
    assert column.process_result_value(None, dialect) is None and column.process_bind_param(None, dialect) is None
    with pytest.raises(ValueError):
        column.process_bind_param(Decimal("0.12345"), dialect)
    assert isinstance(column.load_dialect_impl(dialect), sa.Numeric)


def test_sqlite_binds_integers() -> None:
    column, dialect = Money(), sqlite.dialect()
    assert column.process_bind_param(Decimal("-1.5"), dialect) == -15000
    assert str(column.process_result_value(-15000, dialect)) == "-1.5000"
    assert isinstance(column.load_dialect_impl(dialect), sa.BigInteger)


# --- amount parsers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [("39.49", "39.49"), ("-15.00", "-15.00"), ("-0.0001", "-0.0001"),
                                                ("2.0000", "2.0000"), (" 7 ", "7"), ("+5.5", "5.5"),
                                                ("123456789012.3456", "123456789012.3456"), ("1.5e-3", "0.0015")])
def test_parse_money_is_signed_with_four_places(text: str, expected: str) -> None:
    assert parse_money("Amount", text) == expected


@pytest.mark.parametrize("text", ["0.00001", "-12.34567", "1e-5", "2.00000", "123456789012.345678"])
def test_parse_money_refuses_more_than_four_places(text: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        parse_money("Amount", text)
    assert caught.value.field == "Amount" and caught.value.value == text
    assert "more than 4 decimal places" in str(caught.value)


@pytest.mark.parametrize("text", ["abc", "", "NaN", "1,50"])
def test_parse_money_refuses_non_numbers(text: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        parse_money("Amount", text)
    assert caught.value.field == "Amount"


@pytest.mark.parametrize(("text", "expected"), [("0", "0"), ("29.95", "29.95"), ("0.0001", "0.0001")])
def test_parse_amount_accepts_absolute_amounts(text: str, expected: str) -> None:
    assert parse_amount("Debit", text) == expected


@pytest.mark.parametrize("text", ["-0.0001", "-15.00", "-0"])
def test_parse_amount_refuses_negatives(text: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        parse_amount("Debit", text)
    assert caught.value.field == "Debit" and "negative" in str(caught.value)


def test_parse_amount_checks_places_before_sign() -> None:
    with pytest.raises(InvalidValue) as caught:
        parse_amount("Credit", "-0.00001")
    assert "more than 4 decimal places" in str(caught.value)


def test_parse_money_refuses_amounts_the_column_cannot_hold() -> None:
    with pytest.raises(InvalidValue):
        parse_money("Debit", "1000000000000000")
