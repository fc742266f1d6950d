"""engageip service, attribute, ticket and payment-method records (docs/formats.md): the reader's typed
fields, names and required attributes; the rules checked at read (discounts, ticket status, card and
bank numbers); ticket attachments streamed into the file and database stores."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from producer.attachments import DatabaseStore, FileStore, shown_content
from producer.formats import EngageipOptions
from producer.readers.base import RawRecord
from producer.readers.engageip import EngageIPReader
from producer.readers.engageip_elements import ELEMENTS
from shared.entities import REGISTRY
from shared.errors import ConfigError, InvalidValue, MissingField, UnknownName
from shared.schema import Base
from shared.schema.services import AttachmentBlob

MB = 1024 * 1024
CARD = "4111 1111 1111 1111"  # a test Visa number: passes Luhn
BAD_CARD = "4111 1111 1111 1112"

# --- helpers ----------------------------------------------------------------------------------------


def element(tag: str, attributes: dict[str, str]) -> str:
    return f"<{tag} " + " ".join(f"{name}={quoteattr(value)}" for name, value in attributes.items()) + "/>"


def write_xml(tmp_path: Path, *records: str, name: str = "import.xml") -> Path:
    path = tmp_path / name
    path.write_text("<Import>\n" + "\n".join(records) + "\n</Import>\n", encoding="utf-8")
    return path


def read(path: Path, store: FileStore | DatabaseStore | None = None, *, day_first: bool = False) -> list[RawRecord]:
    return list(EngageIPReader().read(path, EngageipOptions(day_first=day_first, attachments=store)))


def read_one(tmp_path: Path, tag: str, attributes: dict[str, str],
             store: FileStore | DatabaseStore | None = None) -> RawRecord:
    (record,) = read(write_xml(tmp_path, element(tag, attributes)), store)
    assert record.entity == tag
    return record


def error_of(record: RawRecord) -> BaseException:
    assert record.error is not None, f"expected an error, got fields {record.fields}"
    return record.error


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def file_store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "store", MB)


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = create_engine(f"sqlite:///{tmp_path / 'target.db'}")
    Base.metadata.create_all(engine)
    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()


@pytest.fixture
def db_store(sessions: sessionmaker[Session]) -> DatabaseStore:
    return DatabaseStore(sessions, MB)


def blobs(sessions: sessionmaker[Session]) -> list[tuple[str, int, bytes]]:
    with sessions() as session:
        return [(b.sha256, b.size, b.data) for b in session.scalars(select(AttachmentBlob).order_by(AttachmentBlob.sha256))]


def stored_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


# --- every new element: a valid record, its typed fields ---------------------------------------------

# element → (attributes as written, fields as read)
VALID: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "UserPackage": ({"User": "bsmith", "Name": "Monthly DialUp", "NextBillDate": "2/18/2007"},
                    {"User": "bsmith", "Name": "Monthly DialUp", "NextBillDate": "2007-02-18"}),
    "UserService": ({"User": "bsmith", "UserPackage": "Monthly DialUp", "Name": "Dialup", "Optional": "True"},
                    {"User": "bsmith", "UserPackage": "Monthly DialUp", "Name": "Dialup", "Optional": "true"}),
    "UserPackageAttributeDiscount": (
        {"DiscountType": "Fixed", "Amount": "29.99", "User": "bsmith", "UserPackage": "Monthly DialUp", "UserService": "Dialup"},
        {"DiscountType": "Fixed", "Amount": "29.99", "User": "bsmith", "UserPackage": "Monthly DialUp", "UserService": "Dialup"}),
    "UserAttributeExpiryDate": ({"User": "bsmith", "ExpiryDate": "12/31/2007 11:59:59 PM"},
                                {"User": "bsmith", "ExpiryDate": "2007-12-31T23:59:59"}),
    "UserAttributeTaxClass": ({"User": "bsmith", "TaxClass": "Residential"}, {"User": "bsmith", "TaxClass": "Residential"}),
    "UserAttributeTaxCode": ({"User": "bsmith", "TaxCode": "GST"}, {"User": "bsmith", "TaxCode": "GST"}),
    "UserAttributeTaxExempt": ({"User": "bsmith", "TaxCode": "GST", "Certificate": "EX-42"},
                               {"User": "bsmith", "TaxCode": "GST", "Certificate": "EX-42"}),
    "UserNote": ({"User": "bsmith", "Type": "Default", "Note": "called about DSL", "Date": "1/15/2007 12:51:52 PM"},
                 {"User": "bsmith", "Type": "Default", "Note": "called about DSL", "Date": "2007-01-15T12:51:52"}),
    "UserProfileAnswer": ({"User": "admin", "Question": "market", "Answer": "a"},
                          {"User": "admin", "Question": "market", "Answer": "a"}),
    "UserExtendedAttribute": ({"User": "bsmith", "Name": "Region", "Value": "North"},
                              {"User": "bsmith", "Name": "Region", "Value": "North"}),
    "UserPackageExtendedAttribute": ({"User": "bsmith", "UserPackage": "Monthly DialUp", "Name": "Port", "Value": "7"},
                                     {"User": "bsmith", "UserPackage": "Monthly DialUp", "Name": "Port", "Value": "7"}),
    "UserServiceAttribute": (
        {"User": "bsmith", "UserPackage": "Monthly DialUp", "UserService": "Dialup", "Name": "Speed", "Value": "56k"},
        {"User": "bsmith", "UserPackage": "Monthly DialUp", "UserService": "Dialup", "Name": "Speed", "Value": "56k"}),
    "UserServiceProfileAnswer": (
        {"User": "bsmith", "UserService": "Dialup", "Question": "modem", "Answer": "US Robotics", "UserServiceID": "0042"},
        {"User": "bsmith", "UserService": "Dialup", "Question": "modem", "Answer": "US Robotics", "UserServiceID": "42"}),
    "Ticket": (
        {"TicketID": "32194", "User": "jsmith", "Reference": "R-1", "Subject": "customer DSL is slow",
         "Description": "this is the main body", "Resolution": "reset the modem", "AssignedTo": "bsmith",
         "Loggedby": "ljones", "Date": "1/15/2007 12:51:52 PM", "TimeSpent": "0", "Status": "Closed",
         "Priority": "High", "ClosedBy": "nburns", "Dateclosed": "2/18/2007 12:51:52 PM", "Category": "DSL",
         "Contactmethod": "Phone", "Fromaddress": "jsmith@example.com", "Totaltimespent": "15",
         "Currenttimespent": "5", "Lastmodifiedby": "bsmithy", "Hiddenresolution": "background",
         "Showtouser": "True", "Duedate": "1/15/2007 12:00:00 AM"},
        {"TicketID": "32194", "User": "jsmith", "Reference": "R-1", "Subject": "customer DSL is slow",
         "Description": "this is the main body", "Resolution": "reset the modem", "AssignedTo": "bsmith",
         "Loggedby": "ljones", "Date": "2007-01-15T12:51:52", "TimeSpent": "0", "Status": "Closed",
         "Priority": "High", "ClosedBy": "nburns", "Dateclosed": "2007-02-18T12:51:52", "Category": "DSL",
         "Contactmethod": "Phone", "Fromaddress": "jsmith@example.com", "Totaltimespent": "15",
         "Currenttimespent": "5", "Lastmodifiedby": "bsmithy", "Hiddenresolution": "background",
         "Showtouser": "true", "Duedate": "2007-01-15T00:00:00"}),
    "TicketTracking": ({"TicketID": "32194", "Date": "1/16/2007 9:00:00 AM", "Author": "bsmith", "Text": "called back",
                        "Hidden": "1"},
                       {"TicketID": "32194", "Date": "2007-01-16T09:00:00", "Author": "bsmith", "Text": "called back",
                        "Hidden": "true"}),
    "UserPaymentMethodCash": ({"User": "bsmith", "Default": "False"}, {"User": "bsmith", "Default": "false"}),
    "UserPaymentMethodCheck": ({"User": "bsmith", "Default": "TRUE"}, {"User": "bsmith", "Default": "true"}),
    "UserPaymentMethodCreditCard": (
        {"User": "bsmith", "CardType": "Visa", "CardNumber": "4111-1111-1111-1111", "ExpiryMonth": "07",
         "ExpiryYear": "2030", "NameOnCard": "B Smith", "Default": "True"},
        {"User": "bsmith", "CardType": "Visa", "CardNumber": "4111111111111111", "ExpiryMonth": "7",
         "ExpiryYear": "2030", "NameOnCard": "B Smith", "Default": "true", "Last4": "1111"}),
    "UserPaymentMethodACH": (
        {"User": "bsmith", "BankName": "First Bank", "RoutingNumber": "011000015", "AccountNumber": "0001 2345 6789",
         "AccountType": "savings", "NameOnAccount": "B Smith", "Default": "0"},
        {"User": "bsmith", "BankName": "First Bank", "RoutingNumber": "011000015", "AccountNumber": "000123456789",
         "AccountType": "Savings", "NameOnAccount": "B Smith", "Default": "false", "Last4": "6789"}),
}
ATTACHMENT = {"TicketID": "32194", "FileName": "modem.log", "Content": b64(b"modem log\n")}
NEW_ELEMENTS = [*VALID, "TicketAttachment"]


def test_every_new_element_is_known_to_the_reader_and_the_registry() -> None:
    for tag in NEW_ELEMENTS:
        assert tag in ELEMENTS, tag
        assert tag in REGISTRY, tag


@pytest.mark.parametrize("tag", list(VALID))
def test_valid_record_reads_with_typed_fields(tmp_path: Path, tag: str) -> None:
    written, expected = VALID[tag]
    record = read_one(tmp_path, tag, written)
    assert record.error is None, record.error
    assert record.fields == expected
    assert record.position.line == 2


def test_empty_optional_attributes_are_dropped(tmp_path: Path) -> None:
    record = read_one(tmp_path, "UserPackageAttributeDiscount",
                      {"DiscountType": "Price", "Amount": "10", "User": "bsmith", "UserPackage": "Monthly DialUp",
                       "UserService": ""})
    assert record.error is None
    assert "UserService" not in record.fields


def test_day_first_applies_to_the_new_dates(tmp_path: Path) -> None:
    path = write_xml(tmp_path, element("UserAttributeExpiryDate", {"User": "bsmith", "ExpiryDate": "3/4/2007"}))
    (record,) = read(path, day_first=True)
    assert record.fields["ExpiryDate"] == "2007-04-03"


@pytest.mark.parametrize(("tag", "field", "value"), [
    ("UserPackage", "NextBillDate", "2/30/2007"),
    ("UserService", "Optional", "yes"),
    ("UserPackageAttributeDiscount", "Amount", "ten"),
    ("UserPackageAttributeDiscount", "Amount", "1.23456"),
    ("Ticket", "TimeSpent", "1.5"),
    ("Ticket", "Showtouser", "maybe"),
    ("TicketTracking", "Date", "yesterday"),
    ("UserServiceProfileAnswer", "UserServiceID", "first"),
    ("UserPaymentMethodCreditCard", "ExpiryMonth", "July"),
])
def test_wrongly_typed_value_is_invalid(tmp_path: Path, tag: str, field: str, value: str) -> None:
    record = read_one(tmp_path, tag, {**VALID[tag][0], field: value})
    err = error_of(record)
    assert isinstance(err, InvalidValue)
    assert err.field == field
    assert record.fields[field] == value, "a dead record keeps what was written"


@pytest.mark.parametrize(("tag", "wrong", "right"), [
    ("Ticket", "ShowToUser", "Showtouser"),
    ("Ticket", "DateClosed", "Dateclosed"),
    ("UserPaymentMethodCreditCard", "CardNumbr", "CardNumber"),
    ("UserPackageAttributeDiscount", "Discounttype", "DiscountType"),
    ("TicketAttachment", "path", "Path"),
])
def test_unknown_attribute_names_the_close_one(tmp_path: Path, tag: str, wrong: str, right: str) -> None:
    attributes = dict(VALID[tag][0]) if tag in VALID else dict(ATTACHMENT)
    attributes[wrong] = "x"
    record = read_one(tmp_path, tag, attributes)
    err = error_of(record)
    assert isinstance(err, UnknownName)
    assert err.field == wrong
    assert err.hint is not None and repr(right) in err.hint


def _required_cases() -> list[tuple[str, str]]:
    return [(tag, name) for tag in VALID for name in ELEMENTS[tag].required]


@pytest.mark.parametrize(("tag", "name"), _required_cases())
def test_required_attribute_missing_or_empty(tmp_path: Path, tag: str, name: str) -> None:
    for attributes in ({k: v for k, v in VALID[tag][0].items() if k != name}, {**VALID[tag][0], name: "  "}):
        err = error_of(read_one(tmp_path, tag, attributes))
        assert isinstance(err, MissingField), err
        assert err.field == name
        assert name in str(err)


def test_required_attributes_are_the_documented_ones() -> None:
    assert ELEMENTS["Ticket"].required == ("TicketID", "User", "Subject", "Date", "Status")
    assert ELEMENTS["TicketAttachment"].required == ("TicketID", "FileName")
    assert ELEMENTS["TicketAttachment"].one_of == (("Path",), ("Content",))
    assert ELEMENTS["UserPaymentMethodCreditCard"].required == (
        "User", "CardNumber", "ExpiryMonth", "ExpiryYear", "NameOnCard")
    assert ELEMENTS["UserPaymentMethodACH"].required == (
        "User", "RoutingNumber", "AccountNumber", "AccountType", "NameOnAccount")


@pytest.mark.parametrize("name", ["TicketID", "FileName"])
def test_attachment_required_attributes(tmp_path: Path, file_store: FileStore, name: str) -> None:
    attributes = {k: v for k, v in ATTACHMENT.items() if k != name}
    err = error_of(read_one(tmp_path, "TicketAttachment", attributes, file_store))
    assert isinstance(err, MissingField)
    assert err.field == name
    assert stored_files(file_store.root) == []


def test_attachment_needs_path_or_content(tmp_path: Path, file_store: FileStore) -> None:
    err = error_of(read_one(tmp_path, "TicketAttachment", {"TicketID": "1", "FileName": "a.txt"}, file_store))
    assert isinstance(err, MissingField)
    assert "Path or Content" in str(err)


@pytest.mark.parametrize("content", ["", "   "])
def test_empty_content_counts_as_missing(tmp_path: Path, file_store: FileStore, content: str) -> None:
    err = error_of(read_one(tmp_path, "TicketAttachment", {"TicketID": "1", "FileName": "a.txt", "Content": content},
                            file_store))
    assert isinstance(err, MissingField)


# --- rules at read: discounts -----------------------------------------------------------------------


def discount(**changes: str) -> dict[str, str]:
    return {**VALID["UserPackageAttributeDiscount"][0], **changes}


@pytest.mark.parametrize(("written", "canonical"), [
    ("Fixed", "Fixed"), ("fixed", "Fixed"), ("PRICE", "Price"), ("percent", "Percent"), ("pErCeNt", "Percent"),
])
def test_discount_type_is_case_insensitive_and_canonical(tmp_path: Path, written: str, canonical: str) -> None:
    record = read_one(tmp_path, "UserPackageAttributeDiscount", discount(DiscountType=written, Amount="30"))
    assert record.error is None, record.error
    assert record.fields["DiscountType"] == canonical


def test_unknown_discount_type(tmp_path: Path) -> None:
    err = error_of(read_one(tmp_path, "UserPackageAttributeDiscount", discount(DiscountType="Flat")))
    assert isinstance(err, InvalidValue)
    assert err.field == "DiscountType"
    assert "Fixed, Price, Percent" in str(err)


@pytest.mark.parametrize("kind", ["Fixed", "Price", "Percent"])
def test_negative_discount_amount(tmp_path: Path, kind: str) -> None:
    err = error_of(read_one(tmp_path, "UserPackageAttributeDiscount", discount(DiscountType=kind, Amount="-5")))
    assert isinstance(err, InvalidValue)
    assert err.field == "Amount"
    assert "negative" in str(err)


def test_percent_over_100_is_refused_but_100_and_fixed_over_100_are_not(tmp_path: Path) -> None:
    err = error_of(read_one(tmp_path, "UserPackageAttributeDiscount", discount(DiscountType="percent", Amount="100.01")))
    assert isinstance(err, InvalidValue)
    assert err.field == "Amount"
    assert "over 100" in str(err)
    for kind, amount in (("Percent", "100"), ("Percent", "0"), ("Fixed", "150"), ("Price", "250.5")):
        record = read_one(tmp_path, "UserPackageAttributeDiscount", discount(DiscountType=kind, Amount=amount))
        assert record.error is None, (kind, amount, record.error)


# --- rules at read: tickets -------------------------------------------------------------------------


@pytest.mark.parametrize(("written", "canonical"), [("Open", "Open"), ("open", "Open"), ("CLOSED", "Closed")])
def test_ticket_status_is_canonical(tmp_path: Path, written: str, canonical: str) -> None:
    record = read_one(tmp_path, "Ticket", {**VALID["Ticket"][0], "Status": written})
    assert record.error is None
    assert record.fields["Status"] == canonical


@pytest.mark.parametrize("status", ["Pending", "Resolved", "0"])
def test_ticket_status_other_than_open_or_closed(tmp_path: Path, status: str) -> None:
    err = error_of(read_one(tmp_path, "Ticket", {**VALID["Ticket"][0], "Status": status}))
    assert isinstance(err, InvalidValue)
    assert err.field == "Status"
    assert "Open, Closed" in str(err)


# --- rules at read: cards ---------------------------------------------------------------------------


def card(**changes: str) -> dict[str, str]:
    return {**VALID["UserPaymentMethodCreditCard"][0], **changes}


def assert_number_not_in_message(err: BaseException, number: str) -> None:
    digits = "".join(c for c in number if c.isdigit())
    text = str(err)
    assert digits not in text.replace(" ", "").replace("-", "")
    assert number not in text
    assert digits[-8:] not in text


@pytest.mark.parametrize("number", [BAD_CARD, "4111111111111121", "5500 0000 0000 0005"])
def test_card_number_failing_luhn_never_shows_the_number(tmp_path: Path, number: str) -> None:
    err = error_of(read_one(tmp_path, "UserPaymentMethodCreditCard", card(CardNumber=number)))
    assert isinstance(err, InvalidValue)
    assert err.field == "CardNumber"
    assert "Luhn" in str(err)
    assert_number_not_in_message(err, number)


@pytest.mark.parametrize("number", ["4111 1111 1111 111x", "41111111111", "4111 1111 1111 1111 1111"])
def test_card_number_of_wrong_shape_never_shows_the_number(tmp_path: Path, number: str) -> None:
    err = error_of(read_one(tmp_path, "UserPaymentMethodCreditCard", card(CardNumber=number)))
    assert isinstance(err, InvalidValue)
    assert err.field == "CardNumber"
    assert_number_not_in_message(err, number)


@pytest.mark.parametrize("number", [CARD, "4111-1111-1111-1111", "4111111111111111", "5500 0000 0000 0004",
                                    "3782 822463 10005"])
def test_card_number_is_normalised_with_last_four(tmp_path: Path, number: str) -> None:
    record = read_one(tmp_path, "UserPaymentMethodCreditCard", card(CardNumber=number))
    assert record.error is None, record.error
    digits = "".join(c for c in number if c.isdigit())
    assert record.fields["CardNumber"] == digits
    assert record.fields["Last4"] == digits[-4:]


@pytest.mark.parametrize(("month", "year", "expected"), [
    ("1", "2030", ("1", "2030")), ("12", "29", ("12", "2029")), ("07", "2031", ("7", "2031")),
])
def test_expiry_month_and_year(tmp_path: Path, month: str, year: str, expected: tuple[str, str]) -> None:
    record = read_one(tmp_path, "UserPaymentMethodCreditCard", card(ExpiryMonth=month, ExpiryYear=year))
    assert record.error is None, record.error
    assert (record.fields["ExpiryMonth"], record.fields["ExpiryYear"]) == expected


def test_two_digit_expiry_year_with_a_leading_zero(tmp_path: Path) -> None:
    record = read_one(tmp_path, "UserPaymentMethodCreditCard", card(ExpiryYear="09"))
    assert record.error is None, record.error
    assert record.fields["ExpiryYear"] == "2009"


@pytest.mark.parametrize(("field", "value"), [
    ("ExpiryMonth", "0"), ("ExpiryMonth", "13"), ("ExpiryMonth", "-1"), ("ExpiryYear", "123"), ("ExpiryYear", "20301"),
])
def test_expiry_out_of_range(tmp_path: Path, field: str, value: str) -> None:
    err = error_of(read_one(tmp_path, "UserPaymentMethodCreditCard", card(**{field: value})))
    assert isinstance(err, InvalidValue)
    assert err.field == field


# --- rules at read: bank accounts (ACH) -------------------------------------------------------------


def ach(**changes: str) -> dict[str, str]:
    return {**VALID["UserPaymentMethodACH"][0], **changes}


@pytest.mark.parametrize("routing", ["011000015", "021000021", "0110-00015", "011 000 015"])
def test_routing_number_with_a_valid_checksum(tmp_path: Path, routing: str) -> None:
    record = read_one(tmp_path, "UserPaymentMethodACH", ach(RoutingNumber=routing))
    assert record.error is None, record.error
    assert record.fields["RoutingNumber"] == routing.replace("-", "").replace(" ", "")


@pytest.mark.parametrize("routing", ["011000016", "021000012", "01100001", "0110000150", "01100001x"])
def test_routing_number_checksum_and_length(tmp_path: Path, routing: str) -> None:
    err = error_of(read_one(tmp_path, "UserPaymentMethodACH", ach(RoutingNumber=routing)))
    assert isinstance(err, InvalidValue)
    assert err.field == "RoutingNumber"


@pytest.mark.parametrize(("written", "canonical"), [("checking", "Checking"), ("SAVINGS", "Savings"),
                                                    (" Checking ", "Checking")])
def test_account_type_is_canonical(tmp_path: Path, written: str, canonical: str) -> None:
    record = read_one(tmp_path, "UserPaymentMethodACH", ach(AccountType=written))
    assert record.error is None, record.error
    assert record.fields["AccountType"] == canonical


def test_unknown_account_type(tmp_path: Path) -> None:
    err = error_of(read_one(tmp_path, "UserPaymentMethodACH", ach(AccountType="Business")))
    assert isinstance(err, InvalidValue)
    assert err.field == "AccountType"
    assert err.hint == "Checking or Savings"


@pytest.mark.parametrize(("number", "last4"), [("1234", "1234"), ("98-7654-3210", "3210"), ("12345678901234567", "4567")])
def test_account_number_normalised_with_last_four(tmp_path: Path, number: str, last4: str) -> None:
    record = read_one(tmp_path, "UserPaymentMethodACH", ach(AccountNumber=number))
    assert record.error is None, record.error
    assert record.fields["AccountNumber"] == number.replace("-", "")
    assert record.fields["Last4"] == last4


@pytest.mark.parametrize("number", ["123", "123456789012345678", "12345x789"])
def test_account_number_of_wrong_shape_never_shows_the_number(tmp_path: Path, number: str) -> None:
    err = error_of(read_one(tmp_path, "UserPaymentMethodACH", ach(AccountNumber=number)))
    assert isinstance(err, InvalidValue)
    assert err.field == "AccountNumber"
    assert number not in str(err)


# --- attachments: file store ------------------------------------------------------------------------


def attachment(**fields: str) -> str:
    return element("TicketAttachment", {"TicketID": "32194", "FileName": "modem.log", **fields})


def test_path_is_relative_to_the_xml_file(tmp_path: Path, file_store: FileStore, monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"line 1\nline 2\n"
    folder = tmp_path / "exports"
    (folder / "files").mkdir(parents=True)
    (folder / "files" / "modem.log").write_bytes(data)
    path = write_xml(folder, attachment(Path="files/modem.log"))
    monkeypatch.chdir(tmp_path)  # not the XML file's folder
    (record,) = read(path, file_store)
    assert record.error is None, record.error
    assert record.fields == {"TicketID": "32194", "FileName": "modem.log", "Sha256": sha(data), "Size": str(len(data))}
    assert file_store.path_of(sha(data)).read_bytes() == data


def test_file_store_layout_is_content_addressed(tmp_path: Path, file_store: FileStore) -> None:
    data = b"%PDF-1.4 not really\n"
    digest = sha(data)
    (record,) = read(write_xml(tmp_path, attachment(Content=b64(data))), file_store)
    assert record.error is None, record.error
    assert record.fields["Sha256"] == digest
    assert file_store.path_of(digest) == tmp_path / "store" / digest[:2] / digest
    assert stored_files(file_store.root) == [tmp_path / "store" / digest[:2] / digest], "no temporary file left"
    assert (tmp_path / "store" / digest[:2] / digest).read_bytes() == data


def test_base64_content_with_whitespace_and_line_breaks(tmp_path: Path, file_store: FileStore) -> None:
    data = bytes(range(256)) * 4
    encoded = b64(data)
    wrapped = "&#10;".join(encoded[i:i + 76] for i in range(0, len(encoded), 76))
    path = write_xml(tmp_path, f'<TicketAttachment TicketID="1" FileName="bytes.bin" Content="{wrapped}"/>')
    (record,) = read(path, file_store)
    assert record.error is None, record.error
    assert record.fields["Sha256"] == sha(data)
    assert record.fields["Size"] == str(len(data))
    assert file_store.path_of(sha(data)).read_bytes() == data


def test_identical_content_is_stored_once(tmp_path: Path, file_store: FileStore) -> None:
    data = b"the same bytes"
    (tmp_path / "a.txt").write_bytes(data)
    (tmp_path / "b.txt").write_bytes(data)
    path = write_xml(tmp_path, attachment(Path="a.txt"), attachment(FileName="copy.txt", Path="b.txt"),
                     attachment(FileName="inline.txt", Content=b64(data)))
    records = read(path, file_store)
    assert [r.error for r in records] == [None, None, None]
    assert {r.fields["Sha256"] for r in records} == {sha(data)}
    assert stored_files(file_store.root) == [file_store.path_of(sha(data))]


def test_path_above_the_limit_is_refused_before_anything_is_stored(tmp_path: Path, file_store: FileStore) -> None:
    (tmp_path / "big.bin").write_bytes(b"\0" * (MB + 1))
    (tmp_path / "limit.bin").write_bytes(b"\1" * MB)
    records = read(write_xml(tmp_path, attachment(FileName="big.bin", Path="big.bin"),
                             attachment(FileName="limit.bin", Path="limit.bin")), file_store)
    err = error_of(records[0])
    assert isinstance(err, InvalidValue)
    assert err.field == "Path"
    assert "1 MB limit" in str(err)
    assert "attachment_max_mb" in (err.hint or "")
    assert records[0].fields["Path"] == "big.bin"
    assert records[1].error is None, "exactly at the limit is accepted"
    assert stored_files(file_store.root) == [file_store.path_of(sha(b"\1" * MB))]


def test_content_above_the_limit_never_keeps_the_base64(tmp_path: Path, file_store: FileStore) -> None:
    encoded = b64(b"\0" * (MB + 4096))
    (record,) = read(write_xml(tmp_path, attachment(Content=encoded)), file_store)
    err = error_of(record)
    assert isinstance(err, InvalidValue)
    assert err.field == "Content"
    assert "1 MB limit" in str(err)
    assert record.fields["Content"] == f"(base64, {len(encoded)} characters)" == shown_content(encoded)
    assert err.value == shown_content(encoded)
    assert encoded[:64] not in repr(record) + str(err)
    assert stored_files(file_store.root) == []


def test_limit_is_the_store_setting(tmp_path: Path) -> None:
    data = b"x" * 2048
    small, roomy = FileStore(tmp_path / "small", 1024), FileStore(tmp_path / "roomy", 4096)
    path = write_xml(tmp_path, attachment(Content=b64(data)))
    assert isinstance(read(path, small)[0].error, InvalidValue)
    assert read(path, roomy)[0].error is None


def test_line_wrapped_content_just_under_the_limit(tmp_path: Path, file_store: FileStore) -> None:
    data = b"\2" * (MB - 8192)
    encoded = b64(data)
    wrapped = "&#10;".join(encoded[i:i + 76] for i in range(0, len(encoded), 76))
    path = write_xml(tmp_path, f'<TicketAttachment TicketID="1" FileName="a.bin" Content="{wrapped}"/>')
    (record,) = read(path, file_store)
    assert record.error is None, record.error


def test_store_refuses_a_stream_that_outgrows_the_limit(tmp_path: Path) -> None:
    """A file that grows between the size check and the copy: the store's own bound, nothing left."""
    from producer.attachments import TooLarge

    store = FileStore(tmp_path / "store", 10)
    with pytest.raises(TooLarge):
        store.put(iter([b"12345", b"67890", b"1"]))
    assert stored_files(store.root) == []
    assert store.put(iter([b"12345", b"67890"])) == (sha(b"1234567890"), 10)


def test_missing_file_is_a_missing_field(tmp_path: Path, file_store: FileStore) -> None:
    (tmp_path / "folder").mkdir()
    records = read(write_xml(tmp_path, attachment(Path="nowhere/modem.log"), attachment(Path="folder")), file_store)
    for record, written in zip(records, ("nowhere/modem.log", "folder"), strict=True):
        err = error_of(record)
        assert isinstance(err, MissingField)
        assert err.field == "Path"
        assert written in str(err)
        assert "import.xml" in str(err), "names the file paths are relative to"
    assert stored_files(file_store.root) == []


def test_path_outside_the_xml_folder_is_refused(tmp_path: Path, file_store: FileStore) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"not for the target")
    (folder / "link.txt").symlink_to(secret)
    paths = ["../secret.txt", str(secret), "link.txt", "sub/../../secret.txt"]
    records = read(write_xml(folder, *(attachment(FileName=f"f{i}", Path=p) for i, p in enumerate(paths))), file_store)
    for record, written in zip(records, paths, strict=True):
        err = error_of(record)
        assert isinstance(err, InvalidValue), (written, err)
        assert err.field == "Path"
        assert "outside the folder of import.xml" in str(err)
    assert stored_files(file_store.root) == []


@pytest.mark.parametrize("content", ["not base64!", "aGVsbG8", "aGVsbG8=@@@@"])
def test_invalid_base64_is_invalid_value(tmp_path: Path, file_store: FileStore, content: str) -> None:
    (record,) = read(write_xml(tmp_path, attachment(Content=content)), file_store)
    err = error_of(record)
    assert isinstance(err, InvalidValue)
    assert err.field == "Content"
    assert "not base64" in str(err)
    assert record.fields["Content"] == shown_content(content)
    assert stored_files(file_store.root) == []


def test_invalid_base64_after_the_first_chunk_leaves_no_file(tmp_path: Path, file_store: FileStore) -> None:
    from producer.attachments import CHUNK

    encoded = b64(b"\3" * (CHUNK + 3 * 4096))[:-4] + "!!!!"  # decoded in 1 MB chunks: the bad part is in the second
    assert len(encoded) > CHUNK // 3 * 4
    store = FileStore(tmp_path / "store", 2 * MB)
    (record,) = read(write_xml(tmp_path, attachment(Content=encoded)), store)
    assert isinstance(record.error, InvalidValue)
    assert stored_files(store.root) == []


def test_attachment_without_a_store_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        read(write_xml(tmp_path, attachment(Content=b64(b"x"))), None)


# --- attachments: database store --------------------------------------------------------------------


def test_database_store_keeps_identical_content_once(tmp_path: Path, db_store: DatabaseStore,
                                                     sessions: sessionmaker[Session]) -> None:
    first, second = b"first attachment", b"second attachment"
    (tmp_path / "a.txt").write_bytes(first)
    path = write_xml(tmp_path, attachment(Path="a.txt"), attachment(FileName="again.txt", Content=b64(first)),
                     attachment(FileName="other.txt", Content=b64(second)))
    records = read(path, db_store)
    assert [r.error for r in records] == [None, None, None]
    assert [r.fields["Sha256"] for r in records] == [sha(first), sha(first), sha(second)]
    assert [r.fields["Size"] for r in records] == [str(len(first)), str(len(first)), str(len(second))]
    assert sorted(blobs(sessions)) == sorted([(sha(first), len(first), first), (sha(second), len(second), second)])
    read(path, db_store)  # a re-read stores nothing new
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(AttachmentBlob)) == 2


def test_database_store_above_the_limit(tmp_path: Path, db_store: DatabaseStore, sessions: sessionmaker[Session]) -> None:
    (tmp_path / "big.bin").write_bytes(b"\0" * (MB + 1))
    encoded = b64(b"\0" * (MB + 4096))
    records = read(write_xml(tmp_path, attachment(Path="big.bin"), attachment(FileName="inline.bin", Content=encoded)),
                   db_store)
    for record, field in zip(records, ("Path", "Content"), strict=True):
        err = error_of(record)
        assert isinstance(err, InvalidValue)
        assert err.field == field
        assert "1 MB limit" in str(err)
    assert records[1].fields["Content"] == shown_content(encoded)
    assert blobs(sessions) == []


def test_database_store_missing_file_and_bad_base64(tmp_path: Path, db_store: DatabaseStore,
                                                    sessions: sessionmaker[Session]) -> None:
    records = read(write_xml(tmp_path, attachment(Path="missing.txt"), attachment(FileName="bad.txt", Content="%%%%")),
                   db_store)
    assert isinstance(records[0].error, MissingField)
    assert isinstance(records[1].error, InvalidValue)
    assert records[1].fields["Content"] == shown_content("%%%%")
    assert blobs(sessions) == []


# --- large inline attachments (huge_tree) -----------------------------------------------------------


def test_content_attribute_above_libxml2s_10_mb_limit_reads(tmp_path: Path) -> None:
    data = bytes(range(256)) * (9 * MB // 256)  # 9 MB → 12 MB of base64 in one attribute
    store = FileStore(tmp_path / "store", 10 * MB)
    path = tmp_path / "big.xml"
    path.write_text(f'<Import><TicketAttachment TicketID="1" FileName="big.bin" Content="{b64(data)}"/>'
                    '<TicketTracking TicketID="1" Date="1/1/2007" Text="after"/></Import>', encoding="ascii")
    records = read(path, store)
    assert [r.entity for r in records] == ["TicketAttachment", "TicketTracking"]
    assert records[0].error is None, records[0].error
    assert records[0].fields["Size"] == str(len(data))
    assert store.path_of(sha(data)).stat().st_size == len(data)
