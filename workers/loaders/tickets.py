"""engageip tickets: ``Ticket`` (keyed by its old id, ``TicketID``), its ``TicketTracking`` history
and ``TicketAttachment`` files — whose bytes the producer already stored; the record carries only
their SHA-256 and size."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from shared.errors import MissingField, UnknownReference
from shared.schema.services import AttachmentBlob, Ticket, TicketAttachment, TicketTracking
from workers.context import LoadContext, Loaded
from workers.loaders import loader
from workers.rows import put


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _int(text: str | None) -> int | None:
    return int(text) if text else None


def ticket_of(ctx: LoadContext) -> Ticket:
    source_id = ctx.require("TicketID")
    found = ctx.session.scalar(select(Ticket).where(Ticket.source_id == source_id))
    if found is not None:
        return found
    ctx.raise_if_parked("Ticket", source_id)
    raise UnknownReference(f"ticket {source_id!r} not found", field="TicketID", value=source_id,
                           hint="load its Ticket first, in this run or an earlier one")


@loader("Ticket")
def load_ticket(ctx: LoadContext) -> Loaded:
    account = ctx.account("User")
    values = {
        "account_id": account.id, "reference": ctx.get("Reference"), "subject": ctx.require("Subject"),
        "description": ctx.get("Description"), "resolution": ctx.get("Resolution"), "assigned_to": ctx.get("AssignedTo"),
        "logged_by": ctx.get("Loggedby"), "logged_at": _when(ctx.require("Date")), "time_spent": _int(ctx.get("TimeSpent")),
        "status": ctx.require("Status"), "priority_id": ctx.optional_ref("TicketPriority", "Priority"),
        "closed_by": ctx.get("ClosedBy"), "closed_at": _when(ctx.get("Dateclosed")),
        "category_id": ctx.optional_ref("TicketCategory", "Category"), "contact_method": ctx.get("Contactmethod"),
        "from_address": ctx.get("Fromaddress"), "total_time_spent": _int(ctx.get("Totaltimespent")),
        "current_time_spent": _int(ctx.get("Currenttimespent")), "last_modified_by": ctx.get("Lastmodifiedby"),
        "hidden_resolution": ctx.get("Hiddenresolution"), "show_to_user": ctx.get("Showtouser") == "true",
        "due_at": _when(ctx.get("Duedate")),
    }
    return put(ctx, Ticket, {"source_id": ctx.require("TicketID")}, values)


@loader("TicketTracking")
def load_tracking(ctx: LoadContext) -> Loaded:
    ticket = ticket_of(ctx)
    row = TicketTracking(source_key=ctx.envelope.key, ticket_id=ticket.id, tracked_at=_when(ctx.require("Date")),
                         author=ctx.get("Author"), text=ctx.require("Text"), hidden=ctx.get("Hidden") == "true")
    ctx.session.add(row)
    ctx.session.flush()
    return Loaded(row.id)


@loader("TicketAttachment")
def load_attachment(ctx: LoadContext) -> Loaded:
    ticket = ticket_of(ctx)
    sha = ctx.get("Sha256")
    if not sha:
        raise MissingField("the attachment carries no stored content: stage it again with this version of cutover",
                           field="Sha256", value="")
    in_database = ctx.session.scalar(select(AttachmentBlob.sha256).where(AttachmentBlob.sha256 == sha)) is not None
    return put(ctx, TicketAttachment, {"ticket_id": ticket.id, "file_name": ctx.require("FileName")},
               {"sha256": sha, "size": int(ctx.require("Size")), "store": "database" if in_database else "files"})
