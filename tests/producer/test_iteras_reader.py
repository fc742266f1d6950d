"""The iteras reader: which entity each operation becomes, its fields as canonical text (ids, money,
booleans, dates, weekdays, addresses and periods), record-level errors with the field path and a
near-miss hint, the rules one record settles on its own, defaults and digests, and the run's
manual-verification flag."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from producer.formats import FORMATS, IterasOptions
from producer.readers.base import RawRecord
from producer.readers.iteras import IterasReader
from producer.readers.iteras_operations import OPERATIONS
from shared.derived import MANUAL_VERIFICATION
from shared.envelope import content_digest
from shared.errors import InvalidValue, MissingField, RecordError, RuleViolation, UnknownName

CUSTOMER: dict[str, Any] = {"operation": "createcustomer", "id": 10001, "name": "Peter Jensen"}
SUBSCRIPTION: dict[str, Any] = {"operation": "createsubscription", "id": 10001, "subscription_id": "S-30101",
                                "campaign": "AVIS-12M"}
PAYMENT: dict[str, Any] = {"operation": "createpayment", "id": 10001, "amount": 10500, "currency": "DKK", "method": "internal"}
OVERRIDE: dict[str, Any] = {"operation": "createcustomeroverride", "id": 10001, "override_type": "pause-delivery",
                            "subscription_id": "S-30101", "begin": "2026-12-24"}
ADDRESS = {"name": "Poul Eriksen", "company": "", "address": "Boulevarden 21\n9000 Aalborg", "country": "DK"}


def read_lines(tmp_path: Path, *operations: Any, options: IterasOptions | None = None) -> list[RawRecord]:
    """Read ``operations`` written as JSON Lines, one a line (the n-th is on line n)."""
    path = tmp_path / "ops.jsonl"
    path.write_text("".join(json.dumps(op, ensure_ascii=False) + "\n" for op in operations), encoding="utf-8")
    return list(IterasReader().read(path, options or IterasOptions()))


def one(tmp_path: Path, operation: Any, options: IterasOptions | None = None) -> RawRecord:
    (record,) = read_lines(tmp_path, operation, options=options)
    return record


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**base, **changes}


def loaded(tmp_path: Path, operation: Any) -> dict[str, str]:
    """The fields of an operation that must read without error."""
    record = one(tmp_path, operation)
    assert record.error is None, record.error
    return record.fields


def refused(tmp_path: Path, operation: Any, kind: type[RecordError] = RecordError) -> RecordError:
    """The error of an operation that must be refused at read."""
    record = one(tmp_path, operation)
    assert isinstance(record.error, kind), f"expected {kind.__name__}, got {record.error!r} for {operation}"
    return record.error


# --- operations and positions -----------------------------------------------------------------------


@pytest.mark.parametrize(("operation", "entity"), [
    (CUSTOMER, "Customer"), (SUBSCRIPTION, "Subscription"), (PAYMENT, "CustomerPayment"), (OVERRIDE, "CustomerOverride"),
], ids=lambda v: v["operation"] if isinstance(v, dict) else v)
def test_each_operation_becomes_its_entity(tmp_path: Path, operation: dict[str, Any], entity: str) -> None:
    record = one(tmp_path, operation)
    assert record.error is None, record.error
    assert record.entity == entity
    assert "operation" not in record.fields, "the operation is the entity, not a field"
    assert record.fields["id"] == "10001"


def test_operations_table_is_the_four_of_the_contract() -> None:
    assert {name: op.entity for name, op in OPERATIONS.items()} == {
        "createcustomer": "Customer", "createsubscription": "Subscription", "createpayment": "CustomerPayment",
        "createcustomeroverride": "CustomerOverride"}


def test_array_records_have_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "ops.json"
    path.write_text("[\n  " + json.dumps(CUSTOMER) + ",\n  " + json.dumps(PAYMENT) + ", " + json.dumps(SUBSCRIPTION) + "\n]\n",
                    encoding="utf-8")
    records = list(IterasReader().read(path, IterasOptions()))
    assert [(r.entity, r.position.line, r.position.column) for r in records] == [
        ("Customer", 2, 3), ("CustomerPayment", 3, 3), ("Subscription", 3, 5 + len(json.dumps(PAYMENT)))]
    assert str(records[0].position) == f"{path}:2:3"
    assert all(r.error is None for r in records)


def test_reader_for_iteras_and_format_detection() -> None:
    assert isinstance(FORMATS["iteras"].reader(), IterasReader)
    assert FORMATS.detect(Path("ops.json")).name == "iteras" == FORMATS.detect(Path("ops.JSONL")).name


def test_lenient_option_reaches_the_stream(tmp_path: Path) -> None:
    path = tmp_path / "ops.json"
    path.write_text('[\n  {"operation": "createcustomer", "id": 1, "name": "A"}, // kept\n]\n', encoding="utf-8")
    (record,) = IterasReader().read(path, IterasOptions(lenient_json=True))
    assert (record.entity, record.fields, record.position.line) == ("Customer", {"id": "1", "name": "A"}, 2)


# --- ids --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("written", [10001, "10001", "010001", " 10001 "], ids=["number", "string", "zero-padded", "spaces"])
def test_id_as_number_or_digit_string_is_the_same_text(tmp_path: Path, written: object) -> None:
    fields = loaded(tmp_path, with_(CUSTOMER, id=written))
    assert fields["id"] == "10001"
    assert content_digest("Customer", fields) == content_digest("Customer", loaded(tmp_path, CUSTOMER))


@pytest.mark.parametrize("written", [0, -5, 10.5, "A-1", "", True, "1e3"])
def test_bad_customer_id_is_refused(tmp_path: Path, written: object) -> None:
    error = refused(tmp_path, with_(PAYMENT, id=written), InvalidValue)
    assert error.field == "id"
    assert error.hint is not None and "numeric" in error.hint


def test_customer_id_is_optional_but_children_need_one(tmp_path: Path) -> None:
    assert "id" not in loaded(tmp_path, {"operation": "createcustomer", "name": "A"})
    payment = {k: v for k, v in PAYMENT.items() if k != "id"}
    assert refused(tmp_path, payment, MissingField).field == "id"


def test_subscription_id_is_text_either_way(tmp_path: Path) -> None:
    assert loaded(tmp_path, with_(SUBSCRIPTION, subscription_id=30102))["subscription_id"] == "30102"
    assert loaded(tmp_path, with_(SUBSCRIPTION, subscription_id="30102"))["subscription_id"] == "30102"


# --- operation and field names ----------------------------------------------------------------------


def test_unknown_operation_suggests_the_near_miss(tmp_path: Path) -> None:
    record = one(tmp_path, with_(CUSTOMER, operation="createcustomr"))
    assert isinstance(record.error, UnknownName)
    assert record.error.field == "operation" and record.error.value == "createcustomr"
    assert record.error.hint is not None and "did you mean 'createcustomer'" in record.error.hint
    assert "createcustomr" in str(record.error)
    assert record.fields["name"] == "Peter Jensen", "the raw fields are kept for the dead letter"


def test_operation_names_are_case_sensitive(tmp_path: Path) -> None:
    error = refused(tmp_path, with_(PAYMENT, operation="CreatePayment"), UnknownName)
    assert error.hint is not None and "case-sensitive" in error.hint and "'createpayment'" in error.hint


def test_unknown_operation_far_from_any_lists_them(tmp_path: Path) -> None:
    error = refused(tmp_path, with_(PAYMENT, operation="deleteeverything"), UnknownName)
    assert error.hint is not None and all(name in error.hint for name in OPERATIONS)


@pytest.mark.parametrize("operation", [{"id": 1, "name": "A"}, {"operation": None, "id": 1}], ids=["absent", "null"])
def test_missing_operation(tmp_path: Path, operation: dict[str, Any]) -> None:
    error = refused(tmp_path, operation, MissingField)
    assert error.field == "operation"
    assert error.hint is not None and all(name in error.hint for name in OPERATIONS)


def test_operation_that_is_not_text_is_refused(tmp_path: Path) -> None:
    record = one(tmp_path, with_(CUSTOMER, operation=5))
    assert record.error is not None and record.error.field == "operation"


def test_value_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    records = read_lines(tmp_path, CUSTOMER, ["createcustomer"], "createcustomer", 42)
    assert [type(r.error).__name__ if r.error else None for r in records] == [None] + ["InvalidValue"] * 3
    assert all("must be a JSON object" in str(r.error) for r in records[1:])
    assert [r.position.line for r in records] == [1, 2, 3, 4]


def test_unknown_field_suggests_the_near_miss(tmp_path: Path) -> None:
    operation = {"operation": "createcustomer", "id": 1, "nmae": "Peter Jensen"}
    record = one(tmp_path, operation)
    assert isinstance(record.error, UnknownName)
    assert (record.error.field, record.error.value) == ("nmae", "nmae")
    assert record.error.hint is not None and "did you mean 'name'" in record.error.hint
    assert "'nmae'" in str(record.error)
    assert record.entity == "Customer"


def test_unknown_field_far_from_any_lists_the_fields(tmp_path: Path) -> None:
    error = refused(tmp_path, with_(PAYMENT, colour="blue"), UnknownName)
    assert error.hint is not None and "amount" in error.hint and "currency" in error.hint


def test_unknown_field_inside_address_names_its_path(tmp_path: Path) -> None:
    error = refused(tmp_path, with_(CUSTOMER, address={**ADDRESS, "contry": "DK"}), UnknownName)
    assert error.field == "address.contry"
    assert error.hint is not None and "did you mean 'country'" in error.hint


def test_unknown_field_inside_a_period_names_its_index(tmp_path: Path) -> None:
    periods = [{"campaign": "AVIS-3M", "begin": "2025-12-01", "end": "2026-02-28"}, {"campaign": "AVIS-3M", "bgin": "2026-03-01"}]
    error = refused(tmp_path, with_(SUBSCRIPTION, periods=periods), UnknownName)
    assert error.field == "periods[1].bgin"
    assert error.hint is not None and "did you mean 'begin'" in error.hint
    assert "periods[1]" in str(error)


def test_unknown_field_inside_external_invoicing_names_its_path(tmp_path: Path) -> None:
    periods = [{"begin": "2025-12-01", "external_invoicing": {"invoiced": 69000, "paied": 69000}}]
    error = refused(tmp_path, with_(SUBSCRIPTION, periods=periods), UnknownName)
    assert error.field == "periods[0].external_invoicing.paied"
    assert error.hint is not None and "'paid'" in error.hint


def test_period_without_begin_is_refused(tmp_path: Path) -> None:
    error = refused(tmp_path, with_(SUBSCRIPTION, periods=[{"begin": "2025-01-01"}, {"end": "2025-12-31"}]), MissingField)
    assert error.field == "periods[1].begin"


@pytest.mark.parametrize(("operation", "missing"), [
    (SUBSCRIPTION, "campaign"), (SUBSCRIPTION, "subscription_id"), (PAYMENT, "amount"), (PAYMENT, "currency"),
    (PAYMENT, "method"), (OVERRIDE, "override_type"), (OVERRIDE, "begin"),
])
def test_required_fields(tmp_path: Path, operation: dict[str, Any], missing: str) -> None:
    without = {k: v for k, v in operation.items() if k != missing}
    assert refused(tmp_path, without, MissingField).field == missing
    assert refused(tmp_path, with_(operation, **{missing: None}), MissingField).field == missing, "null is absent"


# --- money, booleans, dates -------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [10500, -45233, 0])
def test_amount_in_minor_units(tmp_path: Path, amount: int) -> None:
    assert loaded(tmp_path, with_(PAYMENT, amount=amount))["amount"] == str(amount)


def test_amount_with_decimals_is_refused_with_a_hint(tmp_path: Path) -> None:
    error = refused(tmp_path, with_(PAYMENT, amount=105.5), InvalidValue)
    assert (error.field, error.value) == ("amount", "105.5")
    assert error.hint is not None and "10550" in error.hint and "minor units" in error.hint
    assert "10500 = 105.00" in str(error)


@pytest.mark.parametrize("amount", ["10500", True, None])
def test_amount_must_be_a_json_number(tmp_path: Path, amount: object) -> None:
    error = refused(tmp_path, with_(PAYMENT, amount=amount))
    assert error.field == "amount"


def test_amounts_in_external_invoicing(tmp_path: Path) -> None:
    external = {"invoiced": 69000, "credited": -45233, "paid": 69000, "refunded": 0, "currency": "DKK", "tax_rate": 0.25}
    fields = loaded(tmp_path, with_(SUBSCRIPTION, periods=[{"begin": "2026-03-01", "external_invoicing": external}]))
    (period,) = json.loads(fields["periods"])
    assert period["external_invoicing"] == {"invoiced": "69000", "credited": "-45233", "paid": "69000", "refunded": "0",
                                            "currency": "DKK", "tax_rate": "0.25"}
    error = refused(tmp_path, with_(SUBSCRIPTION, periods=[{"begin": "2026-03-01", "external_invoicing": {"paid": 690.0}}]))
    assert error.field == "periods[0].external_invoicing.paid"


@pytest.mark.parametrize(("written", "text"), [(True, "true"), (False, "false")])
def test_booleans(tmp_path: Path, written: bool, text: str) -> None:
    assert loaded(tmp_path, with_(SUBSCRIPTION, renewed=written))["renewed"] == text


@pytest.mark.parametrize("written", ["true", "false", 1, 0, "yes"])
def test_booleans_must_be_json_booleans(tmp_path: Path, written: object) -> None:
    error = refused(tmp_path, with_(SUBSCRIPTION, renewed=written), InvalidValue)
    assert error.field == "renewed"
    assert "true or false" in str(error)


def test_boolean_inside_a_period_names_its_path(tmp_path: Path) -> None:
    error = refused(tmp_path, with_(SUBSCRIPTION, periods=[{"begin": "2025-01-01", "renewed": "yes"}]), InvalidValue)
    assert error.field == "periods[0].renewed"


@pytest.mark.parametrize(("written", "stored"), [
    ("2019-09-30T08:15:00+02:00", "2019-09-30T06:15:00"),
    ("2019-12-31T23:30:00-02:00", "2020-01-01T01:30:00"),
    ("2019-09-30T08:15:00Z", "2019-09-30T08:15:00"),
    ("2019-09-30T08:15:00", "2019-09-30T08:15:00"),
])
def test_created_date_time_with_offset_is_stored_in_utc(tmp_path: Path, written: str, stored: str) -> None:
    assert loaded(tmp_path, with_(CUSTOMER, created=written))["created"] == stored


def test_created_date_alone_is_that_day(tmp_path: Path) -> None:
    assert loaded(tmp_path, with_(CUSTOMER, created="2014-05-12"))["created"].startswith("2014-05-12")


@pytest.mark.parametrize(("written", "stored"), [
    ("2026-04-01", "2026-04-01"), ("2026-04-01T23:30:00-05:00", "2026-04-01"), ("2026-04-01T00:30:00+02:00", "2026-04-01"),
])
def test_period_dates_keep_the_date_part(tmp_path: Path, written: str, stored: str) -> None:
    periods = [{"begin": written, "end": written}]
    fields = loaded(tmp_path, with_(SUBSCRIPTION, period_begin=written, end=written, periods=periods))
    assert (fields["period_begin"], fields["end"]) == (stored, stored)
    assert json.loads(fields["periods"]) == [{"begin": stored, "end": stored}]
    assert loaded(tmp_path, with_(OVERRIDE, begin=written, end=written))["begin"] == stored


@pytest.mark.parametrize(("field", "written"), [
    ("period_begin", "2026-02-30"), ("period_begin", "01/04/2026"), ("end", 20260401), ("period_begin", ""),
])
def test_impossible_or_non_iso_dates_are_refused(tmp_path: Path, field: str, written: object) -> None:
    error = refused(tmp_path, with_(SUBSCRIPTION, **{field: written}), InvalidValue)
    assert error.field == field
    assert "ISO 8601" in str(error)


def test_impossible_date_inside_a_period_names_its_path(tmp_path: Path) -> None:
    error = refused(tmp_path, with_(SUBSCRIPTION, periods=[{"begin": "2025-01-01"}, {"begin": "2025-02-29"}]), InvalidValue)
    assert (error.field, error.value) == ("periods[1].begin", '"2025-02-29"')


def test_invoicing_is_one_of_four(tmp_path: Path) -> None:
    for invoicing in ("full", "none", "adjusted_begin", "adjusted_end"):
        assert loaded(tmp_path, with_(SUBSCRIPTION, invoicing=invoicing))["invoicing"] == invoicing
    error = refused(tmp_path, with_(SUBSCRIPTION, invoicing="adjusted-end"), InvalidValue)
    assert error.field == "invoicing"
    assert error.hint is not None and "'adjusted_end'" in error.hint


@pytest.mark.parametrize("count", [0, -1, 2.5, "4"])
def test_remaining_assignments_is_a_count(tmp_path: Path, count: object) -> None:
    assert refused(tmp_path, with_(SUBSCRIPTION, remaining_assignments=count), InvalidValue).field == "remaining_assignments"


# --- weekdays, tax rate -----------------------------------------------------------------------------


def test_weekdays_are_stored_sorted_without_repeats(tmp_path: Path) -> None:
    assert loaded(tmp_path, with_(OVERRIDE, weekdays=[7, 1, 6, 1]))["weekdays"] == "[1,6,7]"
    weekend = loaded(tmp_path, with_(OVERRIDE, weekdays=[6, 7]))
    assert weekend["weekdays"] == loaded(tmp_path, with_(OVERRIDE, weekdays=[7, 6, 7]))["weekdays"] == "[6,7]"


@pytest.mark.parametrize(("weekdays", "field"), [([0], "weekdays[0]"), ([1, 8], "weekdays[1]"), ([6, True], "weekdays[1]"),
                                                 ([1, "2"], "weekdays[1]")])
def test_weekday_outside_one_to_seven_is_refused(tmp_path: Path, weekdays: list[object], field: str) -> None:
    error = refused(tmp_path, with_(OVERRIDE, weekdays=weekdays), InvalidValue)
    assert error.field == field
    assert error.hint is not None and "1 (Monday) to 7 (Sunday)" in error.hint


@pytest.mark.parametrize("weekdays", [[], 6, "6,7"])
def test_weekdays_must_be_a_non_empty_list(tmp_path: Path, weekdays: object) -> None:
    assert refused(tmp_path, with_(OVERRIDE, weekdays=weekdays), InvalidValue).field == "weekdays"


def _tax(rate: object) -> dict[str, Any]:
    return with_(SUBSCRIPTION, periods=[{"begin": "2026-03-01", "external_invoicing": {"tax_rate": rate}}])


def test_tax_rate_is_a_fraction(tmp_path: Path) -> None:
    for rate, text in ((0.25, "0.25"), (0, "0"), (0.125, "0.125")):
        (period,) = json.loads(loaded(tmp_path, _tax(rate))["periods"])
        assert period["external_invoicing"]["tax_rate"] == text


@pytest.mark.parametrize("rate", [25, 1, 1.5, -0.25])
def test_tax_rate_as_a_percentage_is_refused_with_a_hint(tmp_path: Path, rate: float) -> None:
    error = refused(tmp_path, _tax(rate), InvalidValue)
    assert error.field == "periods[0].external_invoicing.tax_rate"
    assert error.hint is not None and "0.25" in error.hint


@pytest.mark.parametrize("rate", ["0.25", True])
def test_tax_rate_must_be_a_number(tmp_path: Path, rate: object) -> None:
    assert refused(tmp_path, _tax(rate), InvalidValue).field == "periods[0].external_invoicing.tax_rate"


# --- overrides --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pause-delivery", "alternative-delivery"])
def test_vacation_override_needs_its_subscription(tmp_path: Path, kind: str) -> None:
    operation = {k: v for k, v in with_(OVERRIDE, override_type=kind, address=ADDRESS).items() if k != "subscription_id"}
    error = refused(tmp_path, operation, MissingField)
    assert error.field == "subscription_id"
    assert kind in str(error)


@pytest.mark.parametrize("kind", ["change-delivery-address", "change-billing-address"])
def test_address_change_needs_no_subscription(tmp_path: Path, kind: str) -> None:
    operation = {k: v for k, v in with_(OVERRIDE, override_type=kind, address=ADDRESS).items() if k != "subscription_id"}
    assert loaded(tmp_path, operation)["override_type"] == kind


@pytest.mark.parametrize("kind", ["change-delivery-address", "change-billing-address", "alternative-delivery"])
def test_address_changing_override_needs_the_address(tmp_path: Path, kind: str) -> None:
    error = refused(tmp_path, with_(OVERRIDE, override_type=kind), MissingField)
    assert error.field == "address"
    assert kind in str(error)


def test_unknown_override_type_suggests_the_near_miss(tmp_path: Path) -> None:
    error = refused(tmp_path, with_(OVERRIDE, override_type="pause_delivery"), InvalidValue)
    assert error.field == "override_type"
    assert error.hint is not None and "'pause-delivery'" in error.hint


def test_override_ending_before_it_begins_is_refused(tmp_path: Path) -> None:
    error = refused(tmp_path, with_(OVERRIDE, begin="2027-01-03", end="2026-12-27"), RuleViolation)
    assert (error.field, error.value) == ("end", "2026-12-27")
    assert "2027-01-03" in str(error) and "2026-12-27" in str(error)


def test_one_day_override_and_open_ended_override_are_fine(tmp_path: Path) -> None:
    assert loaded(tmp_path, with_(OVERRIDE, begin="2026-12-24", end="2026-12-24"))["end"] == "2026-12-24"
    assert "end" not in loaded(tmp_path, OVERRIDE)


def test_override_begin_and_end_compare_as_days(tmp_path: Path) -> None:
    """Stored as dates, so a time on either side cannot make a one-day override look reversed."""
    fields = loaded(tmp_path, with_(OVERRIDE, begin="2026-12-24T18:00:00+01:00", end="2026-12-24T08:00:00+01:00"))
    assert (fields["begin"], fields["end"]) == ("2026-12-24", "2026-12-24")


# --- customers --------------------------------------------------------------------------------------


def test_customer_needs_a_name_or_a_company(tmp_path: Path) -> None:
    error = refused(tmp_path, {"operation": "createcustomer", "id": 1, "email": "a@b.dk"}, MissingField)
    assert error.field == "name"
    assert "company" in str(error)
    assert refused(tmp_path, {"operation": "createcustomer", "id": 1, "name": "", "company": ""}, MissingField).field == "name"
    assert loaded(tmp_path, {"operation": "createcustomer", "id": 1, "company": "Kjeldsens Boghandel"})["company"] == (
        "Kjeldsens Boghandel")


@pytest.mark.parametrize("email", ["poul.eriksen", "poul@", "poul eriksen@mail.dk", "poul@mail"])
def test_bad_email_is_refused(tmp_path: Path, email: str) -> None:
    error = refused(tmp_path, with_(CUSTOMER, email=email), InvalidValue)
    assert (error.field, error.value) == ("email", email)


def test_good_email_and_phone_are_kept(tmp_path: Path) -> None:
    fields = loaded(tmp_path, with_(CUSTOMER, email="merete@kjeldsens-boghandel.dk", phone="+45 86 24 11 09"))
    assert (fields["email"], fields["phone"]) == ("merete@kjeldsens-boghandel.dk", "+45 86 24 11 09")


def test_phone_as_a_number_is_refused_with_a_hint(tmp_path: Path) -> None:
    error = refused(tmp_path, with_(CUSTOMER, phone=98421760), InvalidValue)
    assert error.field == "phone"
    assert error.hint is not None and "leading zeros" in error.hint


def test_country_is_two_upper_case_letters(tmp_path: Path) -> None:
    error = refused(tmp_path, with_(CUSTOMER, address={**ADDRESS, "country": "dk"}), InvalidValue)
    assert error.field == "address.country"
    assert error.hint is not None and "DK" in error.hint


# --- canonical text, defaults and digests -----------------------------------------------------------


def test_defaults_are_filled_so_explicit_defaults_have_the_same_digest(tmp_path: Path) -> None:
    bare = loaded(tmp_path, SUBSCRIPTION)
    explicit = loaded(tmp_path, with_(SUBSCRIPTION, invoicing="full", renewed=False))
    assert (bare["invoicing"], bare["renewed"]) == ("full", "false")
    assert bare == explicit
    assert content_digest("Subscription", bare) == content_digest("Subscription", explicit)
    renewed = loaded(tmp_path, with_(SUBSCRIPTION, renewed=True))
    assert content_digest("Subscription", bare) != content_digest("Subscription", renewed)


def test_defaults_belong_to_subscriptions_only(tmp_path: Path) -> None:
    assert loaded(tmp_path, PAYMENT) == {"id": "10001", "amount": "10500", "currency": "DKK", "method": "internal"}
    assert set(loaded(tmp_path, OVERRIDE)) == {"id", "override_type", "subscription_id", "begin"}


def test_address_key_order_does_not_change_the_text(tmp_path: Path) -> None:
    shuffled = dict(reversed(list(ADDRESS.items())))
    assert list(shuffled) != list(ADDRESS)
    first = loaded(tmp_path, with_(CUSTOMER, address=ADDRESS))
    second = loaded(tmp_path, with_(CUSTOMER, address=shuffled))
    assert first["address"] == second["address"]
    assert content_digest("Customer", first) == content_digest("Customer", second)
    assert json.loads(first["address"]) == ADDRESS, "the text is JSON of the same address"
    assert "\\n" in first["address"] and "Aalborg" in first["address"]


def test_field_order_and_period_key_order_do_not_change_the_digest(tmp_path: Path) -> None:
    period = {"campaign": "AVIS-3M", "begin": "2025-12-01", "end": "2026-02-28", "invoicing": "none", "renewed": False,
              "external_invoicing": {"invoiced": 69000, "currency": "DKK", "tax_rate": 0.25}}
    backwards = {k: (dict(reversed(list(v.items()))) if isinstance(v, dict) else v) for k, v in reversed(list(period.items()))}
    first = loaded(tmp_path, with_(SUBSCRIPTION, periods=[period]))
    second = loaded(tmp_path, dict(reversed(list(with_(SUBSCRIPTION, periods=[backwards]).items()))))
    assert first["periods"] == second["periods"]
    assert content_digest("Subscription", first) == content_digest("Subscription", second)


def test_non_ascii_text_is_kept_as_is(tmp_path: Path) -> None:
    address = {**ADDRESS, "address": "Nørregade 14\n1165 København K"}
    fields = loaded(tmp_path, with_(CUSTOMER, name="Søren Kristensen", address=address))
    assert fields["name"] == "Søren Kristensen"
    assert "Nørregade" in fields["address"] and "København" in fields["address"]


def test_null_fields_are_absent(tmp_path: Path) -> None:
    assert loaded(tmp_path, with_(CUSTOMER, email=None, address=None)) == loaded(tmp_path, CUSTOMER)


def test_field_written_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ops.jsonl"
    path.write_text('{"operation": "createpayment", "id": 1, "amount": 100, "currency": "DKK", "method": "internal", '
                    '"amount": 200}\n', encoding="utf-8")
    (record,) = IterasReader().read(path, IterasOptions())
    assert record.error is not None, f"read as {record.fields}"
    assert record.error.field == "amount"


def test_refused_record_keeps_its_fields_as_written_with_canonical_ids(tmp_path: Path) -> None:
    """What the dead letter shows; the ids in canonical form so children find their refused parent."""
    record = one(tmp_path, {"operation": "createsubscription", "id": "0042", "subscription_id": 30101, "campaign": "AVIS-12M",
                            "renewed": "yes", "address": ADDRESS})
    assert record.error is not None
    assert record.fields["id"] == "42" and record.fields["subscription_id"] == "30101"
    assert record.fields["renewed"] == "yes"
    assert json.loads(record.fields["address"]) == ADDRESS


# --- run options ------------------------------------------------------------------------------------


def test_manual_invoice_verification_marks_subscriptions_only_and_not_their_content(tmp_path: Path) -> None:
    operations = (CUSTOMER, SUBSCRIPTION, PAYMENT, OVERRIDE, with_(SUBSCRIPTION, subscription_id="S-2"))
    marked = read_lines(tmp_path, *operations, options=IterasOptions(manual_invoice_verification=True))
    plain = read_lines(tmp_path, *operations)
    assert [r.derived for r in marked] == [{}, {MANUAL_VERIFICATION: "true"}, {}, {}, {MANUAL_VERIFICATION: "true"}]
    assert [r.derived for r in plain] == [{}] * 5
    assert [r.fields for r in marked] == [r.fields for r in plain], "the flag is not content"
    assert all(MANUAL_VERIFICATION not in r.fields for r in marked)


# --- JSON Lines -------------------------------------------------------------------------------------


def test_bad_json_lines_line_is_a_record_error_and_the_file_reads_on(tmp_path: Path) -> None:
    path = tmp_path / "ops.jsonl"
    path.write_text(json.dumps(CUSTOMER) + "\n" + '{"operation": "createpayment", "id": 1,}\n' + json.dumps(PAYMENT) + "\n",
                    encoding="utf-8")
    first, bad, last = IterasReader().read(path, IterasOptions())
    assert first.error is None and last.error is None
    assert isinstance(bad.error, InvalidValue)
    assert (bad.position.line, bad.position.column) == (2, 40)
    assert "line 2, column 40" in str(bad.error) and "--lenient-json" in str(bad.error)
    assert bad.fields == {}
