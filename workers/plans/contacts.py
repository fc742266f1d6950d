"""``Contact`` (a person on an account, keyed by account and name) and its contact points
(``ContactEmail``, ``ContactPhone``, ``ContactFax``, ``ContactPoint``: one per contact and point
type). The batch's accounts, their contacts and those contacts' points are each fetched with one
query."""

from __future__ import annotations

from collections.abc import Sequence

from shared.dialects import table_of
from shared.emails import check_email
from shared.envelope import Envelope
from shared.schema.target import Contact, ContactPoint
from workers.lookups import ContactRow
from workers.plans import Batch, Planned, Planner, planner
from workers.plans.accounts import require

EMAIL_POINT_TYPE = "Email Address"
FAX_POINT_TYPE = "Fax"
CONTACTS = table_of(Contact)
POINTS = table_of(ContactPoint)
CONTACT_VALUES = ("first_name", "last_name", "title", "contact_type_id", "company")


@planner
class Contacts(Planner):
    entities = ("Contact",)

    def prefetch(self, records: Sequence[Envelope], batch: Batch) -> None:
        found = batch.found
        found.want_accounts(e.fields.get("User") for e in records)
        found.want_refs("ContactType", (e.fields.get("ContactType") for e in records))
        accounts = [a.id for e in records for a in found.accounts.get(e.fields.get("User", ""), [])]
        keys = [(a, e.fields.get("ContactName")) for e in records for a in
                (x.id for x in found.accounts.get(e.fields.get("User", ""), [])) if e.fields.get("ContactName")]
        batch.memo["rows"] = found.existing(CONTACTS, ("account_id", "name"), keys, CONTACT_VALUES) if accounts else {}

    def plan(self, env: Envelope, batch: Batch) -> Planned:
        found = batch.found
        account = found.account(require(env, "User"), "User")
        name = require(env, "ContactName")
        values = {
            "first_name": env.fields.get("ContactFirstName"), "last_name": env.fields.get("ContactLastName"),
            "title": env.fields.get("ContactTitle"),
            "contact_type_id": found.optional_ref("ContactType", env.fields.get("ContactType"), "ContactType"),
            "company": env.fields.get("ContactCompany"),
        }
        return Planned(env, CONTACTS, {"account_id": account.id, "name": name}, values,
                       existing=batch.memo["rows"].get((account.id, name)))


@planner
class ContactPoints(Planner):
    entities = ("ContactEmail", "ContactPhone", "ContactFax", "ContactPoint")

    def prefetch(self, records: Sequence[Envelope], batch: Batch) -> None:
        found = batch.found
        found.want_accounts(e.fields.get("User") for e in records)
        found.want_contacts(a.id for e in records for a in found.accounts.get(e.fields.get("User", ""), []))
        found.want_refs("ContactPointType", (_point_type(e) for e in records))
        found.want_refs("ContactType", (e.fields.get("ContactType") for e in records))
        contact_ids = [c.id for (_, _), c in found.contacts.items()]
        contact_ids += [int(e.fields["ContactID"]) for e in records if e.fields.get("ContactID")]
        found.want_points(contact_ids)

    def plan(self, env: Envelope, batch: Batch) -> Planned:
        found = batch.found
        contact = self._contact(env, batch)
        if env.entity == "ContactEmail":
            check_email(require(env, "Email"))
        point_type_id = found.ref("ContactPointType", _point_type(env) or require(env, "ContactPointType"), "ContactPointType")
        value = require(env, {"ContactEmail": "Email", "ContactPhone": "Phone", "ContactFax": "Fax"}.get(env.entity, "Value"))
        contact_type_id = found.optional_ref("ContactType", env.fields.get("ContactType"), "ContactType")
        known = found.points.get((contact.id, point_type_id))
        existing = (known[0], {"value": known[1]}) if known else None
        return Planned(env, POINTS, {"contact_id": contact.id, "point_type_id": point_type_id},
                       {"value": value, "contact_type_id": contact_type_id}, existing=existing, compared=("value",))

    def _contact(self, env: Envelope, batch: Batch) -> ContactRow:
        found = batch.found
        if env.entity == "ContactPoint":
            if env.fields.get("Owner"):
                found.ref("Owner", env.fields["Owner"], "Owner")
            if env.fields.get("ContactID"):
                return found.contact_by_id(int(env.fields["ContactID"]))
        return found.contact(require(env, "User"), require(env, "ContactName"))


def _point_type(env: Envelope) -> str | None:
    return {"ContactEmail": EMAIL_POINT_TYPE, "ContactFax": FAX_POINT_TYPE}.get(env.entity) or env.fields.get("ContactPointType")
