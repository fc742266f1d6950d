"""`cutover vault rotate`: seal every stored secret under the current vault key.

After a rotation (new ``CUTOVER_VAULT_KEY``, old keys in ``CUTOVER_VAULT_PREVIOUS_KEYS``) secrets
sealed before still open; this rewrites them so the old keys can be dropped: the numbers of the
target's payment methods, and the secret fields of staged records (those a replay may still load).
Idempotency keys do not change (their digest key comes from the first key)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from shared.registry import Registry
from shared.schema.control import StagedRecord
from shared.schema.portal import PaymentMethod
from shared.schema.services import AccountPaymentMethod
from shared.vault import PREFIX, Vault

BATCH = 1000


@dataclass
class Rotation:
    rows: dict[str, int] = field(default_factory=dict)


def rotate(sf: sessionmaker[Session], registry: Registry, vault: Vault) -> Rotation:
    result = Rotation()
    for model in (AccountPaymentMethod, PaymentMethod):
        result.rows[model.__tablename__] = _rotate_column(sf, model, vault)
    result.rows["staged_records"] = _rotate_staged(sf, registry, vault)
    return result


def _rotate_column(sf: sessionmaker[Session], model: type[AccountPaymentMethod] | type[PaymentMethod], vault: Vault) -> int:
    done, last = 0, 0
    while True:
        with sf.begin() as session:
            rows = session.execute(select(model.id, model.secret).where(model.id > last, model.secret.is_not(None))
                                   .order_by(model.id).limit(BATCH)).all()
            if not rows:
                return done
            session.execute(update(model), [{"id": row_id, "secret": vault.reencrypt(secret)} for row_id, secret in rows
                                            if secret and secret.startswith(PREFIX)])
            done += len(rows)
            last = rows[-1][0]


def _rotate_staged(sf: sessionmaker[Session], registry: Registry, vault: Vault) -> int:
    secret_entities = {e.name: e.secret_fields for e in registry if e.secret_fields}
    done, last = 0, 0
    while True:
        with sf.begin() as session:
            records = session.execute(
                select(StagedRecord.id, StagedRecord.entity, StagedRecord.payload)
                .where(StagedRecord.id > last, StagedRecord.entity.in_(secret_entities)).order_by(StagedRecord.id)
                .limit(BATCH)).all()
            if not records:
                return done
            changes = []
            for record_id, entity, payload in records:
                sealed = {name: vault.reencrypt(payload[name]) for name in secret_entities[entity]
                          if isinstance(payload.get(name), str) and payload[name].startswith(PREFIX)}
                if sealed:
                    changes.append({"id": record_id, "payload": {**payload, **sealed}})
            if changes:
                session.execute(update(StagedRecord), changes)
            done += len(changes)
            last = records[-1][0]
