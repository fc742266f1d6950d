"""The engageip element vocabulary (FORMATS.md §1): which attributes each element may carry, their
types, and which are required. Element and attribute names are case-sensitive."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.entities import SIMPLE_REFERENCE_KINDS

TEXT, DATE, DATETIME, INT, DECIMAL, AMOUNT, BOOL = "text", "date", "datetime", "int", "decimal", "amount", "bool"


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

ELEMENTS: dict[str, ElementSpec] = {**_REFERENCE, **_ACCOUNTS}
