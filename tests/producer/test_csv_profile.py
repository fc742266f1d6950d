"""Mapping profiles of the csv format: YAML and JSON load to the same profile; unknown keys, import
types and fields are refused with a near-miss hint; every import type's required fields (and the
autopay card-or-ACH group) must be mapped; invoice types are required where the import enrols and
refused where it does not; the account-number recipe and the encoding are checked; the headers a
profile reads include the recipe's columns; a saved profile reads back to the same one."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from producer.readers.csv_profile import IMPORT_TYPES, Part, Profile, ProfileError, load_profile, parse_profile
from shared.errors import ConfigError

AUTOPAY_YAML = """\
import_type: autopay            # registration | autopay | paperless
columns:
  payment_method: "Pay Method"
  card_type: "Card Type"
  card_number: "Card Number"
  card_expiry_month: "Exp Month"
  card_expiry_year: "Exp Year"
  name_on_card: "Name On Card"
  bank_name: "Bank Name"
  routing_number: "Routing Number"
  bank_account_number: "Bank Account"
  bank_account_type: "Account Type"
  name_on_account: "Name On Account"
account_number:
  prefix: "WTR-"
  parts:
    - column: "Account Number"
    - literal: "-"
    - column: "District"
invoice_types: ["Water Bill", "Sewer Bill"]
encoding: utf-8
date_format: "%m/%d/%Y"
"""
AUTOPAY: dict[str, Any] = yaml.safe_load(AUTOPAY_YAML)
CARD = {"payment_method": "Pay Method", "card_number": "Card Number", "card_expiry_month": "Exp Month",
        "card_expiry_year": "Exp Year", "name_on_card": "Name On Card"}
ACH = {"payment_method": "Pay Method", "routing_number": "Routing Number", "bank_account_number": "Bank Account",
       "bank_account_type": "Account Type", "name_on_account": "Name On Account"}
RECIPE = {"parts": [{"column": "Account Number"}]}
REGISTRATION: dict[str, Any] = {"import_type": "registration", "columns": {"name": "Name", "login": "Login"},
                                "account_number": RECIPE}
PAPERLESS: dict[str, Any] = {"import_type": "paperless", "columns": {"email": "E-mail"}, "account_number": RECIPE,
                             "invoice_types": ["Water Bill"]}


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A deep copy of ``base`` with top-level keys replaced (``None`` drops the key)."""
    doc = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def parsed(doc: dict[str, Any]) -> Profile:
    return parse_profile(doc, "profile.yaml")


def refused(doc: dict[str, Any]) -> str:
    """The message of a profile that must be refused; it names the profile."""
    with pytest.raises(ProfileError) as caught:
        parse_profile(doc, "profile.yaml")
    message = str(caught.value)
    assert message.startswith("profile profile.yaml: "), message
    return message


# --- loading ----------------------------------------------------------------------------------------


def test_yaml_and_json_profiles_load_to_the_same_profile(tmp_path: Path) -> None:
    (tmp_path / "water.yaml").write_text(AUTOPAY_YAML, encoding="utf-8")
    (tmp_path / "water.json").write_text(json.dumps(AUTOPAY, indent=2), encoding="utf-8")
    from_yaml = load_profile(tmp_path / "water.yaml")
    from_json = load_profile(tmp_path / "water.json")
    assert from_yaml.path == str(tmp_path / "water.yaml") and from_json.path == str(tmp_path / "water.json")
    assert dataclasses.replace(from_json, path=from_yaml.path) == from_yaml
    assert from_yaml.import_type == "autopay"
    assert from_yaml.columns["card_number"] == "Card Number" and len(from_yaml.columns) == 11
    assert from_yaml.prefix == "WTR-"
    assert from_yaml.parts == (Part(column="Account Number"), Part(literal="-"), Part(column="District"))
    assert from_yaml.invoice_types == ("Water Bill", "Sewer Bill")
    assert (from_yaml.encoding, from_yaml.date_format) == ("utf-8", "%m/%d/%Y")


def test_yml_suffix_reads_as_yaml_and_upper_case_json_as_json(tmp_path: Path) -> None:
    (tmp_path / "p.yml").write_text(AUTOPAY_YAML, encoding="utf-8")
    (tmp_path / "p.JSON").write_text(json.dumps(AUTOPAY), encoding="utf-8")
    assert load_profile(tmp_path / "p.yml").columns == load_profile(tmp_path / "p.JSON").columns


@pytest.mark.parametrize(("name", "text", "expected"), [
    ("bad.json", "{'import_type': 'autopay'}", "not valid JSON"),
    ("bad.yaml", "import_type: [autopay\n", "not valid YAML"),
    ("list.yaml", "- autopay\n", "expected a mapping"),
    ("empty.yaml", "", "expected a mapping"),
])
def test_unreadable_profile_names_the_file(tmp_path: Path, name: str, text: str, expected: str) -> None:
    (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(ProfileError, match=expected) as caught:
        load_profile(tmp_path / name)
    assert str(tmp_path / name) in str(caught.value)


def test_missing_profile_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read it"):
        load_profile(tmp_path / "nowhere.yaml")


def test_profile_error_is_a_config_error() -> None:
    assert issubclass(ProfileError, ConfigError)


# --- top-level keys and import type -----------------------------------------------------------------


@pytest.mark.parametrize(("key", "meant"), [("invoice_type", "invoice_types"), ("colums", "columns"),
                                            ("Encoding", "encoding")])
def test_unknown_top_level_key_suggests_the_near_miss(key: str, meant: str) -> None:
    doc = with_(AUTOPAY)
    doc[key] = doc.pop(meant)
    message = refused(doc)
    assert f"unknown key {key!r}" in message
    assert f"did you mean {meant!r}" in message


def test_unknown_top_level_key_far_from_any_has_no_hint() -> None:
    message = refused(with_(AUTOPAY, colour="blue"))
    assert "unknown key 'colour'" in message and "did you mean" not in message


@pytest.mark.parametrize("import_type", ["autopy", "Autopay", "refund", None, 3])
def test_unknown_import_type_is_refused(import_type: Any) -> None:
    message = refused(with_(AUTOPAY, import_type=import_type))
    assert "import_type" in message and "registration, autopay, paperless" in message
    if import_type in ("autopy", "Autopay"):
        assert "'autopay'" in message.split("—")[-1], "near-miss hint"


def test_every_import_type_of_the_contract_is_known() -> None:
    assert IMPORT_TYPES == ("registration", "autopay", "paperless")
    assert parsed(REGISTRATION).import_type == "registration"
    assert parsed(PAPERLESS).import_type == "paperless"
    assert parsed(AUTOPAY).import_type == "autopay"


# --- columns ----------------------------------------------------------------------------------------


def test_field_not_of_the_import_type_lists_its_fields() -> None:
    message = refused(with_(PAPERLESS, columns={"email": "E-mail", "card_number": "Card Number"}))
    assert "paperless has no field 'card_number'" in message
    assert "(fields: name, email)" in message


def test_field_not_of_the_import_type_suggests_the_near_miss() -> None:
    message = refused(with_(REGISTRATION, columns={"name": "Name", "login": "Login", "emial": "E-mail"}))
    assert "registration has no field 'emial'" in message and "did you mean 'email'" in message


def test_autopay_fields_are_not_registration_fields() -> None:
    message = refused(with_(AUTOPAY, columns={**CARD, "email": "E-mail"}))
    assert "autopay has no field 'email'" in message


@pytest.mark.parametrize("header", ["", "   ", 5, None, ["Name"]], ids=["empty", "blank", "number", "null", "list"])
def test_column_must_name_a_header(header: Any) -> None:
    message = refused(with_(REGISTRATION, columns={"name": "Name", "login": header}))
    assert "columns: login must name a header" in message


def test_columns_must_be_a_mapping() -> None:
    assert "columns must map each field to a header" in refused(with_(REGISTRATION, columns=["name", "login"]))
    assert "columns must map each field to a header" in refused(with_(REGISTRATION, columns=None))


def test_registration_without_login_is_refused() -> None:
    message = refused(with_(REGISTRATION, columns={"name": "Name", "email": "E-mail"}))
    assert "a registration import needs login mapped" in message


def test_registration_without_name_or_login_names_both() -> None:
    assert "needs name, login mapped" in refused(with_(REGISTRATION, columns={"email": "E-mail"}))


def test_paperless_without_email_is_refused() -> None:
    message = refused(with_(PAPERLESS, columns={"name": "Name"}))
    assert "a paperless import needs email mapped" in message


def test_autopay_without_payment_method_is_refused() -> None:
    columns = {k: v for k, v in CARD.items() if k != "payment_method"}
    assert "needs payment_method mapped" in refused(with_(AUTOPAY, columns=columns))


@pytest.mark.parametrize("columns", [
    {k: v for k, v in CARD.items() if k != "name_on_card"},
    {k: v for k, v in ACH.items() if k != "routing_number"},
    {**{k: v for k, v in CARD.items() if k != "card_expiry_year"}, **{k: v for k, v in ACH.items() if k != "bank_account_type"}},
    {"payment_method": "Pay Method", "card_type": "Card Type", "bank_name": "Bank Name"},
], ids=["card-without-name", "ach-without-routing", "both-incomplete", "only-optional"])
def test_autopay_without_a_complete_card_or_ach_group_is_refused(columns: dict[str, str]) -> None:
    message = refused(with_(AUTOPAY, columns=columns))
    assert "needs the card fields" in message and "or the ACH fields" in message


@pytest.mark.parametrize("columns", [CARD, ACH], ids=["card", "ach"])
def test_autopay_with_one_complete_group_loads(columns: dict[str, str]) -> None:
    assert parsed(with_(AUTOPAY, columns=columns)).columns == columns


def test_card_type_and_bank_name_are_optional_in_their_groups() -> None:
    assert "card_type" not in parsed(with_(AUTOPAY, columns=CARD)).columns
    assert "bank_name" not in parsed(with_(AUTOPAY, columns=ACH)).columns


# --- invoice types ----------------------------------------------------------------------------------


@pytest.mark.parametrize("base", [AUTOPAY, PAPERLESS], ids=["autopay", "paperless"])
@pytest.mark.parametrize("invoice_types", [None, [], "Water Bill", ["Water Bill", ""], ["Water Bill", 7]],
                         ids=["absent", "empty", "text", "blank-name", "number"])
def test_invoice_types_are_required_for_imports_that_enrol(base: dict[str, Any], invoice_types: Any) -> None:
    message = refused(with_(base, invoice_types=invoice_types))
    assert "needs invoice_types: a list of invoice type names" in message


def test_invoice_types_are_trimmed_and_deduplicated_in_order() -> None:
    profile = parsed(with_(PAPERLESS, invoice_types=[" Water Bill ", "Sewer Bill", "Water Bill"]))
    assert profile.invoice_types == ("Water Bill", "Sewer Bill")


def test_invoice_types_are_refused_for_registration() -> None:
    message = refused(with_(REGISTRATION, invoice_types=["Water Bill"]))
    assert "invoice_types are for autopay and paperless imports, not registration" in message


def test_registration_has_no_invoice_types() -> None:
    assert parsed(REGISTRATION).invoice_types == ()


# --- account number recipe --------------------------------------------------------------------------


@pytest.mark.parametrize("part", [{"col": "Account Number"}, {"column": "A", "literal": "-"}, "Account Number", {}],
                         ids=["misspelt", "both", "bare-text", "empty"])
def test_recipe_part_that_is_neither_column_nor_literal_is_refused(part: Any) -> None:
    message = refused(with_(REGISTRATION, account_number={"parts": [{"column": "Account Number"}, part]}))
    assert "account_number.parts[1] must be {column: HEADER} or {literal: TEXT}" in message


def test_recipe_with_no_column_at_all_is_refused() -> None:
    message = refused(with_(REGISTRATION, account_number={"prefix": "WTR-", "parts": [{"literal": "0001"}]}))
    assert "names no column" in message


@pytest.mark.parametrize("recipe", [None, {}, {"prefix": "WTR-"}, {"parts": []}, {"parts": {"column": "A"}}, "Account Number"],
                         ids=["absent", "empty", "prefix-only", "no-parts", "parts-not-a-list", "text"])
def test_recipe_needs_a_list_of_parts(recipe: Any) -> None:
    assert "account_number needs parts" in refused(with_(REGISTRATION, account_number=recipe))


@pytest.mark.parametrize("part", [{"literal": None}, {"column": None}], ids=["null-literal", "null-column"])
def test_recipe_part_with_no_value_is_refused(part: dict[str, Any]) -> None:
    message = refused(with_(REGISTRATION, account_number={"parts": [{"column": "Account Number"}, part]}))
    assert "account_number.parts[1]" in message


@pytest.mark.parametrize("header", ["", "   "], ids=["empty", "blank"])
def test_recipe_column_must_name_a_header(header: str) -> None:
    message = refused(with_(REGISTRATION, account_number={"parts": [{"column": "Account Number"}, {"column": header}]}))
    assert "account_number.parts[1]" in message


def test_recipe_unknown_key_is_refused() -> None:
    message = refused(with_(REGISTRATION, account_number={"prefx": "W", "parts": [{"column": "A"}]}))
    assert "account_number: unknown key 'prefx'" in message


def test_recipe_without_prefix_has_an_empty_one() -> None:
    profile = parsed(REGISTRATION)
    assert (profile.prefix, profile.parts) == ("", (Part(column="Account Number"),))


# --- encoding and headers ---------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1", "cp1252", "UTF8"])
def test_known_encodings_load(encoding: str) -> None:
    assert parsed(with_(REGISTRATION, encoding=encoding)).encoding == encoding


def test_unknown_encoding_is_refused() -> None:
    message = refused(with_(REGISTRATION, encoding="latin-9000"))
    assert "encoding 'latin-9000' is unknown" in message


def test_headers_needed_includes_recipe_columns_once() -> None:
    profile = parsed(AUTOPAY)
    needed = profile.headers_needed()
    assert needed[:11] == list(AUTOPAY["columns"].values())
    assert needed[11:] == ["Account Number", "District"]
    shared = parsed(with_(REGISTRATION, account_number={"parts": [{"column": "Login"}, {"literal": "-"}, {"column": "Zone"}]}))
    assert shared.headers_needed() == ["Name", "Login", "Zone"], "a header read twice is listed once"


# --- saving -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("doc", [AUTOPAY, REGISTRATION, PAPERLESS, with_(AUTOPAY, encoding=None, date_format=None)],
                         ids=["autopay", "registration", "paperless", "no-options"])
def test_to_document_round_trips_through_parse_profile(doc: dict[str, Any]) -> None:
    profile = parsed(doc)
    document = profile.to_document()
    assert parse_profile(document, profile.path) == profile
    assert parse_profile(json.loads(json.dumps(document)), profile.path) == profile
    assert parse_profile(yaml.safe_load(yaml.safe_dump(document)), profile.path) == profile


def test_to_document_of_registration_has_no_invoice_types() -> None:
    document = parsed(REGISTRATION).to_document()
    assert "invoice_types" not in document and "encoding" not in document
    assert document["account_number"] == {"prefix": "", "parts": [{"column": "Account Number"}]}


def test_saved_profile_loads_from_a_file(tmp_path: Path) -> None:
    profile = parsed(AUTOPAY)
    path = tmp_path / "saved.yaml"
    path.write_text(yaml.safe_dump(profile.to_document(), sort_keys=False), encoding="utf-8")
    assert dataclasses.replace(load_profile(path), path=profile.path) == profile
