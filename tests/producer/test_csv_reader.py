"""The csv reader: headers matched trimmed and case-insensitively; UTF-8 with or without BOM and other
encodings (option or profile); a mapped column missing from the header blocks the file, with a
near-miss hint; rows with the wrong number of cells, quoted cells spanning lines and blank lines,
with the line each record starts on; the account number built from the profile's recipe; each import
type's required fields; autopay's card or ACH group (normalised numbers, last four digits, the other
group empty, Luhn and routing checks); e-mail addresses; invoice types and the create-missing flag;
a file that cannot be decoded."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from producer.formats import FORMATS, CsvOptions
from producer.readers.base import RawRecord
from producer.readers.csv_import import CsvReader, match_header
from producer.readers.csv_profile import Profile, parse_profile
from shared.derived import CREATE_MISSING
from shared.errors import ConfigError, InvalidValue, MissingField, RecordError, SourceError

RECIPE: dict[str, Any] = {"parts": [{"column": "Account Number"}]}
REGISTRATION = parse_profile({"import_type": "registration", "account_number": RECIPE,
                              "columns": {"name": "Name", "login": "Login"}}, "registration.yaml")
CONTACT = parse_profile({"import_type": "registration", "account_number": RECIPE,
                         "columns": {"name": "Name", "login": "Login", "email": "E-mail", "address": "Address"}}, "contact.yaml")
"""A registration that also maps the optional e-mail and address."""
PAPERLESS = parse_profile({"import_type": "paperless", "account_number": RECIPE, "columns": {"email": "E-mail"},
                           "invoice_types": ["Water Bill", "Sewer Bill"]}, "paperless.yaml")
CONTACT_HEADER = ["Account Number", "Name", "Login", "E-mail", "Address"]
AUTOPAY = parse_profile({"import_type": "autopay", "account_number": RECIPE, "invoice_types": ["Water Bill"], "columns": {
    "payment_method": "Pay Method", "card_type": "Card Type", "card_number": "Card Number", "card_expiry_month": "Exp Month",
    "card_expiry_year": "Exp Year", "name_on_card": "Name On Card", "bank_name": "Bank Name",
    "routing_number": "Routing Number", "bank_account_number": "Bank Account", "bank_account_type": "Account Type",
    "name_on_account": "Name On Account"}}, "autopay.yaml")
AUTOPAY_HEADER = ["Account Number", "Pay Method", "Card Type", "Card Number", "Exp Month", "Exp Year", "Name On Card",
                  "Bank Name", "Routing Number", "Bank Account", "Account Type", "Name On Account"]
CARD_ROW = {"Account Number": "1001", "Pay Method": "Card", "Card Type": "Visa", "Card Number": "4111 1111 1111 1111",
            "Exp Month": "01", "Exp Year": "28", "Name On Card": "Ann Smith"}
ACH_ROW = {"Account Number": "1002", "Pay Method": "ACH", "Bank Name": "First Bank", "Routing Number": "011000015",
           "Bank Account": "0001-2345-6789", "Account Type": "checking", "Name On Account": "Bob Jones"}


def csv_text(header: list[str], *rows: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def autopay_csv(*rows: dict[str, str]) -> str:
    """The autopay header and one line per row (cells not given are empty)."""
    return csv_text(AUTOPAY_HEADER, *([row.get(h, "") for h in AUTOPAY_HEADER] for row in rows))


def write(tmp_path: Path, text: str, encoding: str = "utf-8", name: str = "customers.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def read(path: Path, profile: Profile, **options: Any) -> list[RawRecord]:
    return list(CsvReader().read(path, CsvOptions(mapping=profile, **options)))


def read_text(tmp_path: Path, text: str, profile: Profile, **options: Any) -> list[RawRecord]:
    return read(write(tmp_path, text), profile, **options)


def source_error(path: Path, profile: Profile, **options: Any) -> SourceError:
    with pytest.raises(SourceError) as caught:
        read(path, profile, **options)
    return caught.value


def loaded(record: RawRecord) -> dict[str, str]:
    assert record.error is None, record.error
    return record.fields


def refused(record: RawRecord, kind: type[RecordError] = RecordError) -> RecordError:
    assert isinstance(record.error, kind), f"expected {kind.__name__}, got {record.error!r}"
    return record.error


def field_of(header: str) -> str:
    return next(f for f, h in AUTOPAY.columns.items() if h == header)


def one_autopay(tmp_path: Path, row: dict[str, str], **options: Any) -> RawRecord:
    (record,) = read_text(tmp_path, autopay_csv(row), AUTOPAY, **options)
    return record


# --- header -----------------------------------------------------------------------------------------


def test_header_is_matched_trimmed_and_case_insensitively(tmp_path: Path) -> None:
    text = "  NAME ,login,Notes, account number ,e-MAIL\nAnn Smith,ann,keep out,1001,ann@example.com\n"
    (record,) = read_text(tmp_path, text, REGISTRATION)
    assert record.entity == "Registration"
    assert loaded(record) == {"account_number": "1001", "name": "Ann Smith", "login": "ann"}, \
        "columns the profile does not map are ignored"


def test_match_header_gives_each_needed_header_its_column(tmp_path: Path) -> None:
    index = match_header(tmp_path / "f.csv", [" Login", "x", "NAME", "Account Number ", "E-Mail", "address"], CONTACT)
    assert index == {"Name": 2, "Login": 0, "E-mail": 4, "Address": 5, "Account Number": 3}


def test_repeated_header_reads_the_first_column(tmp_path: Path) -> None:
    (record,) = read_text(tmp_path, "Name,Login,Account Number,name\nAnn,ann,1001,Other\n", REGISTRATION)
    assert loaded(record)["name"] == "Ann"


def test_bom_file_matches_its_first_header(tmp_path: Path) -> None:
    path = write(tmp_path, "\ufeffAccount Number,Name,Login\n1001,Ann,ann\n")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    for options in ({}, {"encoding": "utf-8"}, {"encoding": "UTF8"}):
        (record,) = read(path, REGISTRATION, **options)
        assert loaded(record)["account_number"] == "1001", options


@pytest.mark.parametrize("encoding", ["utf_8", "u8"])
def test_bom_file_with_another_spelling_of_utf8(tmp_path: Path, encoding: str) -> None:
    path = write(tmp_path, "\ufeffAccount Number,Name,Login\n1001,Ann,ann\n")
    (record,) = read(path, REGISTRATION, encoding=encoding)
    assert loaded(record)["account_number"] == "1001"


LATIN1 = "Account Number,Name,Login\n1001,José Müller,jmüller\n"


def test_latin1_file_with_the_encoding_option(tmp_path: Path) -> None:
    path = write(tmp_path, LATIN1, encoding="latin-1")
    (record,) = read(path, REGISTRATION, encoding="latin-1")
    assert loaded(record)["name"] == "José Müller" and record.fields["login"] == "jmüller"


def test_latin1_file_with_the_profiles_encoding(tmp_path: Path) -> None:
    path = write(tmp_path, LATIN1, encoding="latin-1")
    profile = parse_profile({**REGISTRATION.to_document(), "encoding": "latin-1"}, "latin1.yaml")
    (record,) = read(path, profile)
    assert loaded(record)["name"] == "José Müller"


def test_encoding_option_overrides_the_profiles(tmp_path: Path) -> None:
    path = write(tmp_path, LATIN1)  # UTF-8
    profile = parse_profile({**REGISTRATION.to_document(), "encoding": "latin-1"}, "latin1.yaml")
    (record,) = read(path, profile, encoding="utf-8")
    assert loaded(record)["name"] == "José Müller"


def test_file_that_cannot_be_decoded_names_the_encoding_option(tmp_path: Path) -> None:
    path = write(tmp_path, LATIN1, encoding="latin-1")
    error = source_error(path, REGISTRATION)
    assert error.path == str(path)
    assert "--encoding" in str(error) and "cannot be read as utf-8" in str(error)


def test_undecodable_byte_deep_in_the_file_names_its_line(tmp_path: Path) -> None:
    rows = ["Account Number,Name,Login"] + [f"{i},Name {i},login{i}" for i in range(1, 1001)]
    rows[900] = "900,José,jose"  # line 901
    path = write(tmp_path, "\n".join(rows) + "\n", encoding="latin-1")
    error = source_error(path, REGISTRATION)
    assert error.line == 901
    assert "column 8," in error.detail and "0xe9" in error.detail


def test_mapped_column_missing_from_the_header_blocks_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "Account Number,Name,Phone\n1001,Ann,555\n")
    error = source_error(path, REGISTRATION)
    assert (error.path, error.line) == (str(path), 1)
    assert "maps column 'Login', which is not in the header" in str(error)
    assert "the header has Account Number, Name, Phone" in str(error)


def test_mapped_column_missing_from_the_header_suggests_the_near_miss(tmp_path: Path) -> None:
    error = source_error(write(tmp_path, "Account Number,Name,Logins\n1001,Ann,ann\n"), REGISTRATION)
    assert "'Login'" in str(error) and "did you mean 'Logins'?" in str(error)


def test_recipe_column_missing_from_the_header_blocks_the_file(tmp_path: Path) -> None:
    error = source_error(write(tmp_path, "Acct,Name,Login\n1001,Ann,ann\n"), REGISTRATION)
    assert "'Account Number'" in str(error)


def test_empty_file_and_no_profile(tmp_path: Path) -> None:
    assert "the file is empty" in str(source_error(write(tmp_path, ""), REGISTRATION))
    with pytest.raises(ConfigError, match="--profile"):
        list(CsvReader().read(write(tmp_path, LATIN1), CsvOptions()))


def test_reader_for_csv_and_format_detection() -> None:
    assert isinstance(FORMATS["csv"].reader(), CsvReader)
    assert FORMATS.detect(Path("customers.CSV")).name == "csv"


# --- rows and lines ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("row", "cells"), [("1002,Bob", 2), ("1002,Bob,bob,extra", 4)], ids=["too-few", "too-many"])
def test_row_with_the_wrong_number_of_cells_is_that_rows_error(tmp_path: Path, row: str, cells: int) -> None:
    text = f"Account Number,Name,Login\n1001,Ann,ann\n{row}\n1003,Cy,cy\n"
    first, bad, after = read_text(tmp_path, text, REGISTRATION)
    error = refused(bad, InvalidValue)
    assert f"the row has {cells} cells, the header has 3" in str(error)
    assert error.field == "(row)" and error.hint is not None and "quoted" in error.hint
    assert bad.position.line == 3 and bad.entity == "Registration"
    assert bad.fields["name"] == "Bob", "the cells it has are kept for the dead letter"
    assert loaded(first)["login"] == "ann" and loaded(after)["login"] == "cy"
    assert after.position.line == 4


def test_quoted_cell_spanning_lines(tmp_path: Path) -> None:
    text = ('Account Number,Name,Login,E-mail,Address\n'
            '1001,Ann,ann,,"12 Main St\nApt 4\nSpringfield"\n'
            '1002,Bob,bob,,"1 Elm St"\n')
    first, second = read_text(tmp_path, text, CONTACT)
    assert first.position.line == 2, "the line the row starts on"
    assert loaded(first)["address"] == "12 Main St\nApt 4\nSpringfield"
    assert second.position.line == 5
    assert loaded(second)["address"] == "1 Elm St"


def test_quoted_header_cell_spanning_lines_moves_the_first_row(tmp_path: Path) -> None:
    text = 'Account Number,Name,Login,"Notes\n(free text)"\n1001,Ann,ann,x\n'
    (record,) = read_text(tmp_path, text, REGISTRATION)
    assert record.position.line == 3


def test_blank_lines_are_ignored_and_lines_still_count(tmp_path: Path) -> None:
    text = "Account Number,Name,Login\n\n1001,Ann,ann\n\n   \n,,\n1002,Bob,bob\n\n"
    records = read_text(tmp_path, text, REGISTRATION)
    assert [(r.position.line, r.fields["login"]) for r in records] == [(3, "ann"), (7, "bob")]
    assert all(r.error is None for r in records)


def test_crlf_line_endings(tmp_path: Path) -> None:
    text = "Account Number,Name,Login\r\n1001,Ann,ann\r\n1002,Bob,bob\r\n"
    records = read_text(tmp_path, text, REGISTRATION)
    assert [(r.position.line, loaded(r)["login"]) for r in records] == [(2, "ann"), (3, "bob")]


def test_positions_name_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "Account Number,Name,Login\n1001,Ann,ann\n")
    (record,) = read(path, REGISTRATION)
    assert str(record.position) == f"{path}:2"


# --- account number ---------------------------------------------------------------------------------

DISTRICT = parse_profile({**REGISTRATION.to_document(), "account_number": {
    "prefix": "WTR-", "parts": [{"column": "Account Number"}, {"literal": "-"}, {"column": "District"}]}}, "district.yaml")


def test_account_number_is_prefix_and_parts(tmp_path: Path) -> None:
    header = ["Account Number", "Name", "Login", "District"]
    text = csv_text(header, [" 1001 ", "Ann", "ann", "  North"], ["7", "Bob", "bob", "S"])
    first, second = read_text(tmp_path, text, DISTRICT)
    assert loaded(first)["account_number"] == "WTR-1001-North", "column values are trimmed"
    assert loaded(second)["account_number"] == "WTR-7-S"


@pytest.mark.parametrize("empty", ["", "   "], ids=["empty", "blank"])
def test_empty_part_column_is_a_missing_field(tmp_path: Path, empty: str) -> None:
    text = csv_text(["Account Number", "Name", "Login", "District"], ["1001", "Ann", "ann", empty], ["1002", "Bob", "bob", "S"])
    bad, good = read_text(tmp_path, text, DISTRICT)
    error = refused(bad, MissingField)
    assert error.field == "District" and "'District'" in str(error)
    assert bad.fields["login"] == "ann"
    assert loaded(good)["account_number"] == "WTR-1002-S"


# --- registration and paperless ---------------------------------------------------------------------


@pytest.mark.parametrize(("name", "login", "missing"), [("", "ann", "name"), ("Ann", " ", "login")])
def test_registration_needs_name_and_login(tmp_path: Path, name: str, login: str, missing: str) -> None:
    (record,) = read_text(tmp_path, csv_text(["Account Number", "Name", "Login"], ["1001", name, login]), REGISTRATION)
    assert refused(record, MissingField).field == missing


def test_registration_optional_fields_may_be_empty(tmp_path: Path) -> None:
    (record,) = read_text(tmp_path, csv_text(CONTACT_HEADER, ["1001", "Ann", "ann", "", " "]), CONTACT)
    assert loaded(record) == {"account_number": "1001", "name": "Ann", "login": "ann"}


@pytest.mark.parametrize("profile", [CONTACT, PAPERLESS], ids=["registration", "paperless"])
@pytest.mark.parametrize("email", ["ann.example.com", "ann@", "ann@localhost", "a b@example.com"])
def test_bad_email_is_refused(tmp_path: Path, profile: Profile, email: str) -> None:
    text = csv_text(CONTACT_HEADER, ["1001", "Ann", "ann", email, ""])
    (record,) = read_text(tmp_path, text, profile)
    error = refused(record, InvalidValue)
    assert error.field == "email" and "not a valid e-mail address" in str(error)


def test_paperless_row(tmp_path: Path) -> None:
    profile = parse_profile({**PAPERLESS.to_document(), "columns": {"name": "Name", "email": "E-mail"}}, "p.yaml")
    text = csv_text(["Account Number", "Name", "E-mail"], ["1001", "Ann", " ann@example.com "], ["1002", "Bob", ""])
    good, bad = read_text(tmp_path, text, profile)
    assert good.entity == "Paperless"
    fields = loaded(good)
    assert (fields["account_number"], fields["email"], fields["name"]) == ("1001", "ann@example.com", "Ann")
    assert refused(bad, MissingField).field == "email"


def test_invoice_types_travel_as_json_text(tmp_path: Path) -> None:
    profile = parse_profile({**PAPERLESS.to_document(), "invoice_types": ["Water Bill", "Fjernvarme Årsopgørelse"]}, "p.yaml")
    (record,) = read_text(tmp_path, csv_text(["Account Number", "E-mail"], ["1001", "ann@example.com"]), profile)
    text = loaded(record)["invoice_types"]
    assert isinstance(text, str) and json.loads(text) == ["Water Bill", "Fjernvarme Årsopgørelse"]
    assert "Årsopgørelse" in text, "kept as written, not \\u-escaped"
    (registration,) = read_text(tmp_path, "Account Number,Name,Login\n1001,Ann,ann\n", REGISTRATION)
    assert "invoice_types" not in loaded(registration)


# --- autopay ----------------------------------------------------------------------------------------


def test_card_row_is_normalised_with_its_last_four_digits(tmp_path: Path) -> None:
    record = one_autopay(tmp_path, CARD_ROW)
    assert record.entity == "Autopay"
    assert loaded(record) == {
        "account_number": "1001", "payment_method": "card", "card_type": "Visa", "card_number": "4111111111111111",
        "card_expiry_month": "1", "card_expiry_year": "2028", "name_on_card": "Ann Smith", "last4": "1111",
        "invoice_types": '["Water Bill"]'}


def test_ach_row_is_normalised_with_its_last_four_digits(tmp_path: Path) -> None:
    fields = loaded(one_autopay(tmp_path, ACH_ROW))
    assert fields == {
        "account_number": "1002", "payment_method": "ach", "bank_name": "First Bank", "routing_number": "011000015",
        "bank_account_number": "000123456789", "bank_account_type": "Checking", "name_on_account": "Bob Jones",
        "last4": "6789", "invoice_types": '["Water Bill"]'}


@pytest.mark.parametrize(("extra", "stray"), [
    ({"Routing Number": "011000015"}, "routing_number"),
    ({"Bank Account": "123456789"}, "bank_account_number"),
    ({"Bank Name": "First Bank"}, "bank_name"),
])
def test_card_row_also_filling_ach_fields_is_refused(tmp_path: Path, extra: dict[str, str], stray: str) -> None:
    error = refused(one_autopay(tmp_path, {**CARD_ROW, **extra}), InvalidValue)
    assert error.field == stray and "a card row also fills" in str(error)
    assert "4111" not in str(error) and "123456789" not in str(error)
    assert error.value == "(not shown)"


def test_ach_row_also_filling_card_fields_is_refused(tmp_path: Path) -> None:
    error = refused(one_autopay(tmp_path, {**ACH_ROW, "Card Type": "Visa"}), InvalidValue)
    assert error.field == "card_type" and "ACH row also fills card_type" in str(error)


@pytest.mark.parametrize("missing", ["Routing Number", "Bank Account", "Account Type", "Name On Account"])
def test_ach_row_without_a_needed_field_is_refused(tmp_path: Path, missing: str) -> None:
    row = {k: v for k, v in ACH_ROW.items() if k != missing}
    error = refused(one_autopay(tmp_path, row), MissingField)
    assert error.field == field_of(missing) and "ACH payment method needs" in str(error)


@pytest.mark.parametrize("missing", ["Card Number", "Exp Month", "Exp Year", "Name On Card"])
def test_card_row_without_a_needed_field_is_refused(tmp_path: Path, missing: str) -> None:
    row = {k: v for k, v in CARD_ROW.items() if k != missing}
    error = refused(one_autopay(tmp_path, row), MissingField)
    assert error.field == field_of(missing) and "card payment method needs" in str(error)


def test_card_type_and_bank_name_are_optional(tmp_path: Path) -> None:
    assert "card_type" not in loaded(one_autopay(tmp_path, {**CARD_ROW, "Card Type": ""}))
    assert "bank_name" not in loaded(one_autopay(tmp_path, {**ACH_ROW, "Bank Name": ""}))


def test_luhn_failure_is_an_invalid_card_number(tmp_path: Path) -> None:
    record = one_autopay(tmp_path, {**CARD_ROW, "Card Number": "4111 1111 1111 1112"})
    error = refused(record, InvalidValue)
    assert error.field == "card_number" and "Luhn" in str(error)
    assert "4111111111111112" not in str(error) and "4111 1111 1111 1112" not in str(error)


def test_bad_routing_number_is_an_invalid_value(tmp_path: Path) -> None:
    error = refused(one_autopay(tmp_path, {**ACH_ROW, "Routing Number": "011000016"}), InvalidValue)
    assert error.field == "routing_number"


@pytest.mark.parametrize(("column", "value", "field"), [
    ("Pay Method", "cheque", "payment_method"), ("Exp Month", "13", "card_expiry_month"), ("Exp Year", "123", "card_expiry_year"),
])
def test_bad_card_values_are_invalid_values(tmp_path: Path, column: str, value: str, field: str) -> None:
    assert refused(one_autopay(tmp_path, {**CARD_ROW, column: value}), InvalidValue).field == field


def test_superscript_expiry_month_is_that_rows_error(tmp_path: Path) -> None:
    records = read_text(tmp_path, autopay_csv({**CARD_ROW, "Exp Month": "²"}, CARD_ROW), AUTOPAY)
    assert [type(r.error).__name__ if r.error else None for r in records] == ["InvalidValue", None]


def test_empty_payment_method_is_a_missing_field(tmp_path: Path) -> None:
    assert refused(one_autopay(tmp_path, {**CARD_ROW, "Pay Method": ""}), MissingField).field == "payment_method"


def test_a_bad_row_does_not_stop_the_next(tmp_path: Path) -> None:
    text = autopay_csv({**CARD_ROW, "Card Number": "4111 1111 1111 1112"}, ACH_ROW, CARD_ROW)
    records = read_text(tmp_path, text, AUTOPAY)
    assert [type(r.error).__name__ if r.error else None for r in records] == ["InvalidValue", None, None]
    assert [r.position.line for r in records] == [2, 3, 4]


# --- create missing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", [AUTOPAY, PAPERLESS], ids=["autopay", "paperless"])
def test_create_missing_is_derived_for_autopay_and_paperless(tmp_path: Path, profile: Profile) -> None:
    text = autopay_csv(CARD_ROW) if profile is AUTOPAY else "Account Number,E-mail\n1001,ann@example.com\n"
    (record,) = read_text(tmp_path, text, profile, create_missing=True)
    assert record.derived == {CREATE_MISSING: "true"}
    assert CREATE_MISSING not in loaded(record)
    (plain,) = read_text(tmp_path, text, profile)
    assert plain.derived == {} and plain.fields == record.fields


def test_create_missing_is_not_derived_for_registration(tmp_path: Path) -> None:
    (record,) = read_text(tmp_path, "Account Number,Name,Login\n1001,Ann,ann\n", REGISTRATION, create_missing=True)
    assert record.derived == {} and CREATE_MISSING not in loaded(record)
