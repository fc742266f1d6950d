"""``User``: the account itself, keyed by (Owner, Name). Its references are resolved from the batch's
lookups; its password hash was made before the transaction opened (``workers/batch.py``), and a
stored one is compared by verifying the record's password against it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from shared.dialects import table_of
from shared.envelope import Envelope
from shared.errors import InvalidValue, MissingField
from shared.schema.target import Account
from workers.passwords import hash_password, verify_password
from workers.plans import Batch, Planned, Planner, planner

BILL_DAYS = range(1, 29)
REFS = {  # field (= reference kind) → column
    "Role": "role_id", "Culture": "culture_id", "Currency": "currency_id", "Language": "language_id",
    "StatusType": "status_type_id", "TaxCode": "tax_code_id", "BillGroup": "bill_group_id", "CreditRating": "credit_rating_id",
}
COMPARED = (*REFS.values(), "bill_day", "disable_reason", "created_date", "password_hash")
TABLE = table_of(Account)


def require(env: Envelope, name: str) -> str:
    value = env.fields.get(name)
    if value is None or value == "":
        raise MissingField(f"{env.entity} needs {name}", field=name, value="")
    return value


@planner
class Users(Planner):
    entities = ("User",)

    def prefetch(self, records: Sequence[Envelope], batch: Batch) -> None:
        found = batch.found
        found.want_refs("Owner", (e.fields.get("Owner") for e in records))
        for kind in REFS:
            found.want_refs(kind, (e.fields.get(kind) for e in records))
        owners = {e.fields.get("Owner", ""): found.ref_ids.get(("Owner", e.fields.get("Owner", ""))) for e in records}
        keys = [(owners.get(e.fields.get("Owner", "")), e.fields.get("Name")) for e in records]
        batch.memo["rows"] = found.existing(TABLE, ("owner_id", "name"), [k for k in keys if k[0] and k[1]], COMPARED)

    def plan(self, env: Envelope, batch: Batch) -> Planned:
        found = batch.found
        name = require(env, "Name")
        owner_id = found.ref("Owner", require(env, "Owner"), "Owner")
        bill_day = env.fields.get("BillDay")
        if bill_day is not None and int(bill_day) not in BILL_DAYS:
            raise InvalidValue(f"BillDay {bill_day} is outside 1–28", field="BillDay", value=bill_day,
                               hint="accounts bill on a day from 1 to 28 (no 29, 30, 31)")
        values: dict[str, object] = {column: found.optional_ref(kind, env.fields.get(kind), kind)
                                     for kind, column in REFS.items()}
        created = env.fields.get("CreatedDate")
        values.update(bill_day=int(bill_day) if bill_day is not None else None, disable_reason=env.fields.get("DisableReason"),
                      created_date=datetime.fromisoformat(created) if created else None)
        existing = batch.memo["rows"].get((owner_id, name))
        secret = env.fields.get("Password")
        def hashed() -> str | None:
            return (batch.hashes.get(env.key) or hash_password(batch.vault.decrypt(secret))) if secret else None

        if existing is None:
            values["password_hash"] = hashed()
            return Planned(env, TABLE, {"owner_id": owner_id, "name": name}, values)
        stored = existing[1]["password_hash"]

        def same() -> bool:
            clear = batch.vault.decrypt(secret) if secret else None
            same_password = (clear is None and stored is None) or (
                clear is not None and stored is not None and verify_password(stored, clear))
            return same_password and all(existing[1][c] == values[c] for c in values)

        if env.upsert and not same():
            values["password_hash"] = hashed()
            return Planned(env, TABLE, {"owner_id": owner_id, "name": name}, values, existing=existing,
                           same=lambda: False)
        return Planned(env, TABLE, {"owner_id": owner_id, "name": name}, values, existing=existing, same=same)
