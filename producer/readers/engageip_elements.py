"""The engageip element vocabulary (docs/formats.md): which attributes each element may carry, their
types, and which are required. Element and attribute names are case-sensitive."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.entities import SIMPLE_REFERENCE_KINDS

TEXT, DATE, DATETIME, INT, DECIMAL, AMOUNT, MONEY, BOOL = (
    "text", "date", "datetime", "int", "decimal", "amount", "money", "bool")


@dataclass(frozen=True)
class ElementSpec:
    """An element's attributes (name → type) and the ones that must be present and non-empty."""

    attributes: dict[str, str]
    required: tuple[str, ...] = ()
    one_of: tuple[tuple[str, ...], ...] = field(default=())
    """Alternative groups: at least one group must be complete (ContactID, or User + ContactName)."""


def _text(*names: str) -> dict[str, str]:
    return {n: TEXT for n in names}


_REFERENCE: dict[str, ElementSpec] = {kind: ElementSpec(_text("Name"), ("Name",)) for kind in SIMPLE_REFERENCE_KINDS}
_REFERENCE.update({
    "Currency": ElementSpec(_text("Code", "Name"), ("Code",)),
    "TaxCode": ElementSpec({"Name": TEXT, "Rate1": DECIMAL, "Rate2": DECIMAL, "Rate3": DECIMAL, "Rate4": DECIMAL}, ("Name",)),
    "Role": ElementSpec(_text("Name", "Owner"), ("Name",)),
    "PackageService": ElementSpec(_text("Package", "Service"), ("Package", "Service")),
    "Campaign": ElementSpec({"Code": TEXT, "Name": TEXT, "Kind": TEXT, "Length": INT, "Price": AMOUNT, "Currency": TEXT},
                            ("Code", "Kind", "Length")),
})

_ACCOUNTS: dict[str, ElementSpec] = {
    "User": ElementSpec(
        {**_text("Name", "Password", "Owner", "Role", "Culture", "Currency", "Language", "StatusType", "TaxCode",
                 "BillGroup", "CreditRating", "DisableReason"), "CreatedDate": DATETIME, "BillDay": INT},
        ("Name", "Owner"),
    ),
    "Contact": ElementSpec(_text("User", "ContactName", "ContactFirstName", "ContactLastName", "ContactTitle",
                                 "ContactType", "ContactCompany"), ("User", "ContactName")),
    "ContactEmail": ElementSpec(_text("User", "ContactName", "Email", "ContactType"), ("User", "ContactName", "Email")),
    "ContactPhone": ElementSpec(_text("User", "ContactName", "Phone", "ContactType", "ContactPointType"),
                                ("User", "ContactName", "Phone", "ContactPointType")),
    "ContactFax": ElementSpec(_text("User", "ContactName", "Fax", "ContactType"), ("User", "ContactName", "Fax")),
    "ContactPoint": ElementSpec({**_text("Owner", "ContactPointType", "Value", "User", "ContactName"), "ContactID": INT},
                                ("ContactPointType", "Value"), one_of=(("ContactID",), ("User", "ContactName"))),
    "Company": ElementSpec(_text("User", "Company"), ("User", "Company")),
    "ChildAccount": ElementSpec(_text("Name", "Parent"), ("Name", "Parent")),
}

_TAXES = {f"Tax{i}": AMOUNT for i in (1, 2, 3, 4)}
_LEDGER: dict[str, ElementSpec] = {
    "Debit": ElementSpec(
        {"User": TEXT, "Date": DATETIME, "Debit": AMOUNT, "Credit": AMOUNT, **_TAXES, "TaxCode": TEXT, "Description": TEXT,
         "Package": TEXT, "PeriodStart": DATETIME, "PeriodEnd": DATETIME},
        ("User", "Date", "Debit"),
    ),
    "Credit": ElementSpec(
        {"User": TEXT, "Date": DATETIME, "Credit": AMOUNT, "Bulk": AMOUNT, "ApplyTax": BOOL, "TaxCode": TEXT,
         "Description": TEXT, "Package": TEXT},
        ("User", "Date", "Credit"),
    ),
    "CloseInvoice": ElementSpec({"CloseInvoice": TEXT, "User": TEXT, "Name": TEXT, "Printed": BOOL}),
    "OpeningBalance": ElementSpec({"User": TEXT, "Date": DATETIME, "Amount": MONEY, "Description": TEXT},
                                  ("User", "Date", "Amount")),
    "Payment": ElementSpec(
        {"User": TEXT, "Date": DATETIME, "Credit": AMOUNT, "Description": TEXT, "PaymentType": TEXT, "Invoice": TEXT},
        ("User", "Date", "Credit"),
    ),
}

_SERVICES: dict[str, ElementSpec] = {
    "UserPackage": ElementSpec({"User": TEXT, "Name": TEXT, "NextBillDate": DATETIME}, ("User", "Name")),
    "UserService": ElementSpec({"User": TEXT, "UserPackage": TEXT, "Name": TEXT, "Optional": BOOL},
                               ("User", "UserPackage", "Name")),
    "UserPackageAttributeDiscount": ElementSpec(
        {"DiscountType": TEXT, "Amount": MONEY, "User": TEXT, "UserPackage": TEXT, "UserService": TEXT},
        ("DiscountType", "Amount", "User", "UserPackage")),
}

_ATTRIBUTES: dict[str, ElementSpec] = {
    "UserAttributeExpiryDate": ElementSpec({"User": TEXT, "ExpiryDate": DATETIME}, ("User", "ExpiryDate")),
    "UserAttributeTaxClass": ElementSpec(_text("User", "TaxClass"), ("User", "TaxClass")),
    "UserAttributeTaxCode": ElementSpec(_text("User", "TaxCode"), ("User", "TaxCode")),
    "UserAttributeTaxExempt": ElementSpec(_text("User", "TaxCode", "Certificate"), ("User", "TaxCode")),
    "UserNote": ElementSpec({"User": TEXT, "Type": TEXT, "Note": TEXT, "Date": DATETIME}, ("User", "Type", "Note")),
    "UserProfileAnswer": ElementSpec(_text("User", "Question", "Answer"), ("User", "Question")),
    "UserExtendedAttribute": ElementSpec(_text("User", "Name", "Value"), ("User", "Name")),
    "UserPackageExtendedAttribute": ElementSpec(_text("User", "UserPackage", "Name", "Value"), ("User", "UserPackage", "Name")),
    "UserServiceAttribute": ElementSpec(_text("User", "UserPackage", "UserService", "Name", "Value"),
                                        ("User", "UserPackage", "UserService", "Name")),
    "UserServiceProfileAnswer": ElementSpec({**_text("User", "UserService", "Question", "Answer"), "UserServiceID": INT},
                                            ("User", "UserService", "Question")),
}

_TICKETS: dict[str, ElementSpec] = {
    "Ticket": ElementSpec(
        {**_text("TicketID", "User", "Reference", "Subject", "Description", "Resolution", "AssignedTo", "Loggedby",
                 "Status", "Priority", "ClosedBy", "Category", "Contactmethod", "Fromaddress", "Lastmodifiedby",
                 "Hiddenresolution"),
         "Date": DATETIME, "TimeSpent": INT, "Dateclosed": DATETIME, "Totaltimespent": INT, "Currenttimespent": INT,
         "Showtouser": BOOL, "Duedate": DATETIME},
        ("TicketID", "User", "Subject", "Date", "Status")),
    "TicketTracking": ElementSpec({"TicketID": TEXT, "Date": DATETIME, "Author": TEXT, "Text": TEXT, "Hidden": BOOL},
                                  ("TicketID", "Date", "Text")),
    "TicketAttachment": ElementSpec(_text("TicketID", "FileName", "Path", "Content"), ("TicketID", "FileName"),
                                    one_of=(("Path",), ("Content",))),
}

_PAYMENT_METHODS: dict[str, ElementSpec] = {
    "UserPaymentMethodCash": ElementSpec({"User": TEXT, "Default": BOOL}, ("User",)),
    "UserPaymentMethodCheck": ElementSpec({"User": TEXT, "Default": BOOL}, ("User",)),
    "UserPaymentMethodCreditCard": ElementSpec(
        {**_text("User", "CardType", "CardNumber", "NameOnCard", "ExpiryMonth", "ExpiryYear"), "Default": BOOL},
        ("User", "CardNumber", "ExpiryMonth", "ExpiryYear", "NameOnCard")),
    "UserPaymentMethodACH": ElementSpec(
        {**_text("User", "BankName", "RoutingNumber", "AccountNumber", "AccountType", "NameOnAccount"), "Default": BOOL},
        ("User", "RoutingNumber", "AccountNumber", "AccountType", "NameOnAccount")),
}

ELEMENTS: dict[str, ElementSpec] = {**_REFERENCE, **_ACCOUNTS, **_LEDGER, **_SERVICES, **_ATTRIBUTES, **_TICKETS,
                                    **_PAYMENT_METHODS}
