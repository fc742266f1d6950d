"""The csv tools around the reader: spreadsheet-safe report cells (formula starts escaped, plain
numbers and non-text kept); `csv profile init` guessing the obvious mappings from a header and leaving
placeholders that `csv profile check` refuses until they are filled in; `check` against a file's
header; `--email` refused without an SMTP server or with a bad address."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from ops.mailer import require_mail
from ops.profiles import check_profile, init_profile
from ops.report import spreadsheet_safe
from producer.readers.csv_profile import Part, ProfileError
from shared.errors import ConfigError
from shared.settings import Settings

AUTOPAY_HEADER = ("Account Number,Pay Method,Card Number,Exp Month,Exp Year,Name On Card,Routing Number,Bank Account,"
                  "Account Type,Name On Account")


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def initialised(tmp_path: Path, header: str, import_type: str,
                encoding: str | None = None) -> tuple[dict[str, Any], list[str], Path]:
    """The profile document ``init`` writes for a file with ``header``, the fields it left to do, and the file."""
    data = write(tmp_path, "customers.csv", header + "\n", encoding or "utf-8")
    text, todo = init_profile(data, import_type, encoding)
    doc = yaml.safe_load(text)
    assert isinstance(doc, dict), text
    return doc, todo, data


def saved(tmp_path: Path, doc: dict[str, Any], name: str = "customers.profile.yaml") -> Path:
    return write(tmp_path, name, yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


# --- spreadsheet_safe -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["=1+1", "-cmd", "@SUM(1)", "+1+1", "=HYPERLINK(\"http://x\")", "\t=1", "\r=1", "\tplain",
                                   "-2+3", "+", "-", "=", "-1e3", "--1"])
def test_formula_starts_get_an_apostrophe(value: str) -> None:
    assert spreadsheet_safe(value) == "'" + value


@pytest.mark.parametrize("value", ["-12.50", "+3", "+1", "-7", "12", "0.5"])
def test_plain_numbers_are_unchanged(value: str) -> None:
    assert spreadsheet_safe(value) == value


@pytest.mark.parametrize("value", ["Ann Smith", "", "a=b", " =1", "1+1", "ann@example.com"])
def test_text_not_starting_with_a_formula_character_is_unchanged(value: str) -> None:
    assert spreadsheet_safe(value) == value


@pytest.mark.parametrize("value", [None, 5, -3, -12.5, True], ids=repr)
def test_non_strings_are_unchanged(value: object) -> None:
    assert spreadsheet_safe(value) is value


# --- init_profile -----------------------------------------------------------------------------------


def test_init_guesses_the_obvious_autopay_mappings(tmp_path: Path) -> None:
    doc, todo, _ = initialised(tmp_path, AUTOPAY_HEADER, "autopay")
    assert doc["import_type"] == "autopay"
    columns = doc["columns"]
    assert columns["card_number"] == "Card Number"
    assert columns["routing_number"] == "Routing Number"
    assert columns["bank_account_number"] == "Bank Account"
    assert columns["bank_account_type"] == "Account Type"
    assert columns["payment_method"] == "Pay Method"
    assert (columns["card_expiry_month"], columns["card_expiry_year"]) == ("Exp Month", "Exp Year")
    assert doc["account_number"] == {"prefix": "", "parts": [{"column": "Account Number"}]}
    assert "Account Number" not in columns.values(), "the account number header is the recipe's, not a field's"
    assert todo == []


def test_init_guesses_email_and_leaves_required_fields_to_do(tmp_path: Path) -> None:
    doc, todo, _ = initialised(tmp_path, "Acct,E-mail,Street Address,Telephone", "registration")
    assert doc["columns"] == {"email": "E-mail", "phone": "Telephone", "address": "Street Address"}
    assert doc["account_number"]["parts"] == [{"column": "Acct"}]
    assert todo == ["name", "login"]
    assert "invoice_types" not in doc


def test_init_for_paperless_maps_email(tmp_path: Path) -> None:
    doc, todo, _ = initialised(tmp_path, " Customer Number , Full Name , E-mail Address ", "paperless")
    assert doc["columns"] == {"name": "Full Name", "email": "E-mail Address"}
    assert doc["account_number"]["parts"] == [{"column": "Customer Number"}]
    assert todo == []


def test_init_writes_the_headers_and_what_is_not_mapped_as_comments(tmp_path: Path) -> None:
    data = write(tmp_path, "customers.csv", "Account Number,E-mail\n")
    text, _ = init_profile(data, "paperless", None)
    assert text.startswith("# cutover csv profile, written from the header of customers.csv\n")
    assert "# headers: Account Number, E-mail\n" in text
    assert "# not mapped (add them under columns if the file has them): name\n" in text


def test_init_keeps_the_encoding(tmp_path: Path) -> None:
    doc, _, _ = initialised(tmp_path, "Kontonummer,Navn,Brugernavn,Adresse Måned", "registration", encoding="latin-1")
    assert doc["encoding"] == "latin-1"


def test_init_of_an_empty_or_undecodable_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="empty"):
        init_profile(write(tmp_path, "empty.csv", ""), "paperless", None)
    with pytest.raises(ConfigError, match="--encoding"):
        init_profile(write(tmp_path, "latin.csv", "Måned\n", "latin-1"), "paperless", None)


def test_placeholders_fail_the_check_until_filled_in(tmp_path: Path) -> None:
    doc, todo, data = initialised(tmp_path, "Name On Card,E-mail,Telephone", "registration")
    assert todo == ["name", "login", "account_number"]
    with pytest.raises(ProfileError, match="FILL IN"):
        check_profile(saved(tmp_path, doc), None, None)
    doc["columns"].update(name="Name On Card", login="E-mail")
    assert doc["account_number"]["parts"][0]["column"].startswith("FILL IN")
    with pytest.raises(ConfigError, match="FILL IN: account number header"):
        check_profile(saved(tmp_path, doc), data, None)
    doc["account_number"]["parts"] = [{"column": "Telephone"}]
    profile = check_profile(saved(tmp_path, doc), data, None)
    assert profile.parts == (Part(column="Telephone"),)


@pytest.mark.parametrize(("header", "with_file"), [
    (AUTOPAY_HEADER, False), (AUTOPAY_HEADER, True), ("Pay Method,Card Number,Exp Month,Exp Year,Name On Card", False),
], ids=["invoice-types", "invoice-types-with-file", "account-number"])
def test_check_refuses_init_placeholders(tmp_path: Path, header: str, with_file: bool) -> None:
    doc, todo, data = initialised(tmp_path, header, "autopay")
    assert todo == ([] if "Account" in header else ["account_number"])
    with pytest.raises(ConfigError, match="FILL IN"):
        check_profile(saved(tmp_path, doc), data if with_file else None, None)


def test_init_with_a_header_cell_spanning_lines_writes_a_loadable_profile(tmp_path: Path) -> None:
    data = write(tmp_path, "customers.csv", 'Account Number,E-mail,"Notes\n(free text)"\n')
    text, _ = init_profile(data, "paperless", None)
    profile_path = write(tmp_path, "p.yaml", text.replace("FILL IN: an invoice type name", "Water Bill"))
    assert check_profile(profile_path, data, None).columns == {"email": "E-mail"}


# --- check_profile ----------------------------------------------------------------------------------

PAPERLESS: dict[str, Any] = {"import_type": "paperless", "columns": {"email": "E-mail"},
                             "account_number": {"parts": [{"column": "Account Number"}]}, "invoice_types": ["Water Bill"]}


def test_check_profile_alone_and_against_a_matching_header(tmp_path: Path) -> None:
    profile_path = saved(tmp_path, PAPERLESS)
    assert check_profile(profile_path, None, None).columns == {"email": "E-mail"}
    data = write(tmp_path, "customers.csv", " e-mail ,ACCOUNT NUMBER,Notes\nann@example.com,1001,x\n")
    assert check_profile(profile_path, data, None).invoice_types == ("Water Bill",)


def test_check_profile_against_a_header_missing_a_column(tmp_path: Path) -> None:
    data = write(tmp_path, "customers.csv", "Account Number,Email Adress\n")
    with pytest.raises(ConfigError) as caught:
        check_profile(saved(tmp_path, PAPERLESS), data, None)
    assert "maps column 'E-mail', which is not in the header" in str(caught.value)
    assert str(data) in str(caught.value)


def test_check_profile_reads_the_header_in_the_profiles_encoding_or_the_option(tmp_path: Path) -> None:
    header = "Kontonummer,E-mail Måned\n"
    data = write(tmp_path, "customers.csv", header, "latin-1")
    doc = {**PAPERLESS, "columns": {"email": "E-mail Måned"}, "account_number": {"parts": [{"column": "Kontonummer"}]}}
    with pytest.raises(ConfigError, match="--encoding"):
        check_profile(saved(tmp_path, doc), data, None)
    assert check_profile(saved(tmp_path, doc), data, "latin-1").columns == {"email": "E-mail Måned"}
    assert check_profile(saved(tmp_path, {**doc, "encoding": "latin-1"}), data, None).encoding == "latin-1"


def test_check_profile_of_a_bad_profile_is_a_profile_error(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="needs invoice_types"):
        check_profile(saved(tmp_path, {**PAPERLESS, "invoice_types": []}), None, None)


# --- require_mail -----------------------------------------------------------------------------------


def test_email_is_refused_without_an_smtp_server() -> None:
    with pytest.raises(ConfigError, match="CUTOVER_SMTP_HOST") as caught:
        require_mail(Settings(), "ops@example.com")
    assert "nothing was started" in str(caught.value)


@pytest.mark.parametrize("address", ["ops", "ops@", "ops@localhost", "", "ops@example.com, boss@example.com"])
def test_email_to_an_invalid_address_is_refused(address: str) -> None:
    with pytest.raises(ConfigError, match="--email .* is not a valid e-mail address"):
        require_mail(Settings(smtp_host="mail.example.com"), address)


def test_email_with_a_bad_starttls_setting_is_refused() -> None:
    with pytest.raises(ConfigError, match="smtp_starttls"):
        require_mail(Settings(smtp_host="mail.example.com", smtp_starttls="sometimes"), "ops@example.com")


@pytest.mark.parametrize("starttls", ["auto", "always", "never"])
def test_email_is_accepted_with_a_server(starttls: str) -> None:
    with_server = Settings(smtp_host="mail.example.com", smtp_starttls=starttls)
    assert require_mail(with_server, "ops@example.com") is None
    with pytest.raises(ConfigError, match="CUTOVER_SMTP_HOST"):  # the same settings without the server are refused
        require_mail(replace(with_server, smtp_host=""), "ops@example.com")
