"""Reference data (the seed's System Configuration Import): one row per kind and name.

Kind-specific values are kept as exact text in ``attributes`` (tax rates as decimal strings), and
references between reference kinds (Role → Owner, PackageService → Package/Service, Campaign →
Currency) are resolved like any other reference."""

from __future__ import annotations

from sqlalchemy import select

from shared.entities import SIMPLE_REFERENCE_KINDS
from shared.errors import InvalidValue
from shared.schema.target import ReferenceItem
from workers.context import LoadContext, Loaded
from workers.loaders import loader

CAMPAIGN_KINDS = ("time", "assignments")


def _key_and_attributes(ctx: LoadContext) -> tuple[str, dict[str, str]]:
    kind = ctx.entity.name
    fields = dict(ctx.fields)
    if kind in ("Currency", "Campaign"):
        key = ctx.require("Code")
        fields.pop("Code")
    elif kind == "PackageService":
        package, service = ctx.require("Package"), ctx.require("Service")
        ctx.ref("Package", "Package")
        ctx.ref("Service", "Service")
        return f"{package} / {service}", fields
    else:
        key = ctx.require("Name")
        fields.pop("Name")
    if kind == "Role" and ctx.get("Owner"):
        ctx.ref("Owner", "Owner")
    if kind == "Campaign":
        if fields.get("Kind") not in CAMPAIGN_KINDS:
            raise InvalidValue(f"Campaign Kind {fields.get('Kind')!r} is not one of {', '.join(CAMPAIGN_KINDS)}",
                               field="Kind", value=fields.get("Kind"))
        if int(fields.get("Length", "0")) <= 0:
            raise InvalidValue("Campaign Length must be positive", field="Length", value=fields.get("Length"))
        if fields.get("Currency"):
            ctx.ref("Currency", "Currency")
    return key, fields


@loader(*SIMPLE_REFERENCE_KINDS, "Currency", "TaxCode", "Role", "PackageService", "Campaign")
def load_reference(ctx: LoadContext) -> Loaded:
    kind = ctx.entity.name
    name, attributes = _key_and_attributes(ctx)
    row = ctx.session.scalar(select(ReferenceItem).where(ReferenceItem.kind == kind, ReferenceItem.name == name))
    if row is not None:
        existing = row

        def update() -> None:
            existing.attributes = attributes
        return ctx.existing(existing.id, update, same=existing.attributes == attributes)
    row = ReferenceItem(kind=kind, name=name, attributes=attributes)
    ctx.session.add(row)
    ctx.session.flush()
    return Loaded(row.id)
