"""The entity types cutover loads, declared once into the default registry.

Adding an entity family means: declare its types here (queue, dependencies, natural key), map
source records to it in a reader, and write its loader module in ``workers/loaders``.
"""

from __future__ import annotations

from shared.registry import EntityType, Registry

REFERENCE_QUEUE = "reference"
ACCOUNTS_QUEUE = "accounts"
CONTACTS_QUEUE = "contacts"
LEDGER_QUEUE = "ledger"
SUBSCRIPTIONS_QUEUE = "subscriptions"
SERVICES_QUEUE = "services"
TICKETS_QUEUE = "tickets"
CONTROL_QUEUE = "control"

#: Reference kinds keyed by ``Name`` with no further attributes.
SIMPLE_REFERENCE_KINDS: tuple[str, ...] = (
    "Owner", "Culture", "Language", "StatusType", "TaxClass", "BillGroup", "CreditRating",
    "ContactType", "ContactPointType", "Package", "Service", "PaymentType", "NoteType",
    "ProfileQuestion", "TicketPriority", "TicketCategory", "InvoiceType",
)


def _reference_types() -> list[EntityType]:
    simple = [EntityType(kind, REFERENCE_QUEUE, natural_key=("Name",)) for kind in SIMPLE_REFERENCE_KINDS]
    return simple + [
        EntityType("Currency", REFERENCE_QUEUE, natural_key=("Code",)),
        EntityType("TaxCode", REFERENCE_QUEUE, natural_key=("Name",)),
        EntityType("Role", REFERENCE_QUEUE, depends_on=("Owner",), natural_key=("Name",)),
        EntityType("PackageService", REFERENCE_QUEUE, depends_on=("Package", "Service"),
                   natural_key=("Package", "Service")),
        EntityType("Campaign", REFERENCE_QUEUE, depends_on=("Currency",), natural_key=("Code",)),
    ]


_USER_REFS = ("Owner", "Role", "Culture", "Currency", "Language", "StatusType", "TaxCode", "BillGroup", "CreditRating")


def _account_types() -> list[EntityType]:
    return [
        EntityType("User", ACCOUNTS_QUEUE, depends_on=_USER_REFS, natural_key=("Owner", "Name"), ref_key=("Name",),
                   secret_fields=("Password",)),
        EntityType("ChildAccount", ACCOUNTS_QUEUE, depends_on=("User",), natural_key=("Name",)),
        EntityType("Contact", CONTACTS_QUEUE, depends_on=("User", "ContactType"),
                   natural_key=("User", "ContactName")),
        EntityType("ContactEmail", CONTACTS_QUEUE, depends_on=("Contact", "ContactPointType"),
                   natural_key=("User", "ContactName")),
        EntityType("ContactPhone", CONTACTS_QUEUE, depends_on=("Contact", "ContactPointType"),
                   natural_key=("User", "ContactName", "ContactPointType")),
        EntityType("ContactFax", CONTACTS_QUEUE, depends_on=("Contact", "ContactPointType"),
                   natural_key=("User", "ContactName")),
        EntityType("ContactPoint", CONTACTS_QUEUE, depends_on=("Contact", "ContactPointType"),
                   natural_key=("ContactID", "User", "ContactName", "ContactPointType")),
        EntityType("Company", CONTACTS_QUEUE, depends_on=("Contact",), natural_key=("User",)),
    ]


_LINE_DEPENDS = ("User", "ChildAccount", "Service", "TaxCode")


def _ledger_types() -> list[EntityType]:
    """Ledger records have no natural key: two equal lines are two charges. Lines load after the
    account hierarchy is settled (the ChildAccount guard), closes after lines, payments last."""
    return [
        EntityType("Debit", LEDGER_QUEUE, depends_on=_LINE_DEPENDS),
        EntityType("Credit", LEDGER_QUEUE, depends_on=_LINE_DEPENDS),
        EntityType("OpeningBalance", LEDGER_QUEUE, depends_on=_LINE_DEPENDS),
        EntityType("CloseInvoice", LEDGER_QUEUE, depends_on=("Debit", "Credit", "OpeningBalance")),
        EntityType("Payment", LEDGER_QUEUE, depends_on=("CloseInvoice", "PaymentType")),
    ]


def _subscription_types() -> list[EntityType]:
    """The iteras operations. Customers come first, payments after them; subscriptions after their
    campaign; overrides after the subscriptions they may name. Payments and overrides have no natural
    key: two equal ones are two."""
    return [
        EntityType("Customer", ACCOUNTS_QUEUE, natural_key=("id",)),
        EntityType("Subscription", SUBSCRIPTIONS_QUEUE, depends_on=("Customer", "Campaign"),
                   natural_key=("subscription_id",)),
        EntityType("CustomerOverride", SUBSCRIPTIONS_QUEUE, depends_on=("Customer", "Subscription")),
        EntityType("CustomerPayment", LEDGER_QUEUE, depends_on=("Customer", "Currency")),
    ]


def _portal_types() -> list[EntityType]:
    """The csv format's imports. A registration creates the account and its owner login; autopay and
    paperless act on the owner login, so they load after registrations. Registrations load after engageip
    accounts, so a registration for an account a User record creates in the same run finds it."""
    return [
        EntityType("Registration", ACCOUNTS_QUEUE, depends_on=("User",), natural_key=("account_number",)),
        EntityType("Autopay", ACCOUNTS_QUEUE, depends_on=("Registration", "User", "InvoiceType"),
                   natural_key=("account_number",), secret_fields=("card_number", "bank_account_number")),
        EntityType("Paperless", ACCOUNTS_QUEUE, depends_on=("Registration", "User", "InvoiceType"),
                   natural_key=("account_number",)),
    ]


def _service_types() -> list[EntityType]:
    """engageip services, account attributes, tickets and payment methods. A package before its
    services, a service before its discount and attributes; tickets before their tracking and
    attachments. Notes and tracking records have no natural key (two equal notes are two notes);
    neither do card and bank payment methods (the number is secret, so it cannot be a key)."""
    user = ("User",)
    return [
        EntityType("UserPackage", SERVICES_QUEUE, depends_on=("User", "Package"), natural_key=("User", "Name")),
        EntityType("UserService", SERVICES_QUEUE, depends_on=("UserPackage", "Service"),
                   natural_key=("User", "UserPackage", "Name")),
        EntityType("UserPackageAttributeDiscount", SERVICES_QUEUE, depends_on=("UserPackage", "UserService"),
                   natural_key=("User", "UserPackage", "UserService")),
        EntityType("UserAttributeExpiryDate", SERVICES_QUEUE, depends_on=user, natural_key=user),
        EntityType("UserAttributeTaxClass", SERVICES_QUEUE, depends_on=("User", "TaxClass"), natural_key=user),
        EntityType("UserAttributeTaxCode", SERVICES_QUEUE, depends_on=("User", "TaxCode"), natural_key=user),
        EntityType("UserAttributeTaxExempt", SERVICES_QUEUE, depends_on=("User", "TaxCode"), natural_key=("User", "TaxCode")),
        EntityType("UserNote", SERVICES_QUEUE, depends_on=("User", "NoteType")),
        EntityType("UserProfileAnswer", SERVICES_QUEUE, depends_on=("User", "ProfileQuestion"),
                   natural_key=("User", "Question")),
        EntityType("UserExtendedAttribute", SERVICES_QUEUE, depends_on=user, natural_key=("User", "Name")),
        EntityType("UserPackageExtendedAttribute", SERVICES_QUEUE, depends_on=("UserPackage",),
                   natural_key=("User", "UserPackage", "Name")),
        EntityType("UserServiceAttribute", SERVICES_QUEUE, depends_on=("UserService",),
                   natural_key=("User", "UserPackage", "UserService", "Name")),
        EntityType("UserServiceProfileAnswer", SERVICES_QUEUE, depends_on=("UserService", "ProfileQuestion"),
                   natural_key=("User", "UserService", "Question", "UserServiceID")),
        EntityType("Ticket", TICKETS_QUEUE, depends_on=("User", "TicketPriority", "TicketCategory"),
                   natural_key=("TicketID",)),
        EntityType("TicketTracking", TICKETS_QUEUE, depends_on=("Ticket",)),
        EntityType("TicketAttachment", TICKETS_QUEUE, depends_on=("Ticket",), natural_key=("TicketID", "FileName")),
        EntityType("UserPaymentMethodCash", ACCOUNTS_QUEUE, depends_on=user, natural_key=user),
        EntityType("UserPaymentMethodCheck", ACCOUNTS_QUEUE, depends_on=user, natural_key=user),
        EntityType("UserPaymentMethodCreditCard", ACCOUNTS_QUEUE, depends_on=user, secret_fields=("CardNumber",)),
        EntityType("UserPaymentMethodACH", ACCOUNTS_QUEUE, depends_on=user, secret_fields=("AccountNumber",)),
    ]


def build_default_registry() -> Registry:
    registry = Registry()
    registry.declare_all(_reference_types())
    registry.declare_all(_account_types())
    registry.declare_all(_ledger_types())
    registry.declare_all(_subscription_types())
    registry.declare_all(_portal_types())
    registry.declare_all(_service_types())
    registry.waves  # noqa: B018 - a cycle must fail at start-up, not mid-run
    return registry


REGISTRY = build_default_registry()
