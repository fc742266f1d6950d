"""Set-based loading: a **planner** per entity type decides, a **writer** per table writes.

A planner is pure. Given a record and the batch's :class:`~workers.lookups.Lookups` (fetched once for
the whole batch: ``prefetch`` says what it needs), it applies every rule and returns what should be
written — a :class:`Planned` row: its table, natural-key columns and values, and the existing row
when there is one — or raises the same ``RecordError``/``Blocked`` the record's dead letter is made
from. It never writes, so a bad record fails alone without a savepoint.

The writer (:func:`write_rows`, or a planner's own ``write`` when its family needs more, like the
ledger's invoices) then writes the batch's rows together: rows found unchanged are skipped, rows
found different are a ``Conflict`` (or, with ``--upsert``, updated together), new rows are
inserted in one statement per table (``shared/dialects``: on PostgreSQL ``COPY`` into a temporary
twin, then one ``INSERT … SELECT … RETURNING``). When the
database refuses that write, the batch falls back to records alone (``workers/batch.py``), so a bad
record still fails alone — set-based is the normal path, per-record work only isolates errors.

Entity types without a planner load through their per-record loader (``workers/loaders``), in the
same batch transaction."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Session

from shared.dialects import dialect_of
from shared.envelope import Envelope, show_key
from shared.errors import Conflict, RecordError
from shared.registry import EntityType
from shared.vault import Vault
from workers.lookups import Lookups


@dataclass
class Planned:
    """One record's row: ``key`` (natural-key columns) and ``values``; ``existing`` is the row with
    that key when there is one: (its id, the columns compared). ``compared`` names the columns whose
    difference is a conflict (default: every value); ``same`` overrides the comparison (a password is
    compared by verifying it). ``after`` is the planner's own follow-up (an invoice's delta)."""

    env: Envelope
    table: Table
    key: dict[str, Any]
    values: dict[str, Any]
    existing: tuple[int, dict[str, Any]] | None = None
    compared: tuple[str, ...] | None = None
    same: Callable[[], bool] | None = None
    after: Any = None
    outcome: str = "committed"
    target_id: int | None = None
    error: RecordError | None = None


@dataclass
class Batch:
    """What a planner works with: the batch's lookups, the passwords hashed before the transaction
    opened (by record key), and the vault (a secret is revealed only to compare it)."""

    entity: EntityType
    found: Lookups
    hashes: dict[str, str]
    vault: Vault
    memo: dict[str, Any] = field(default_factory=dict)
    """What a planner's ``prefetch`` found for its own use (existing rows by natural key)."""


class Planner:
    """An entity family's decisions. Subclasses name their ``entities`` and implement ``prefetch``
    and ``plan``; ``write`` is the generic writer unless the family needs more."""

    entities: tuple[str, ...] = ()
    records_at_once: int | None = None
    """At most this many records a transaction (none: the whole batch), for a family whose records
    each stand for many rows: one transaction's lookups and rows are held in memory together."""

    def prefetch(self, records: Sequence[Envelope], batch: Batch) -> None:
        """Ask ``batch.found`` for everything the batch's records name (one query per kind)."""

    def plan(self, env: Envelope, batch: Batch) -> Planned:
        raise NotImplementedError

    def write(self, session: Session, planned: list[Planned], batch: Batch) -> None:
        write_rows(session, batch.entity, planned)


PLANNERS: dict[str, Planner] = {}


def planner(cls: type[Planner]) -> type[Planner]:
    """Register a planner class for its entities."""
    instance = cls()
    for name in cls.entities:
        if name in PLANNERS:
            raise ValueError(f"two planners for entity {name!r}")
        PLANNERS[name] = instance
    return cls


def load_planners() -> dict[str, Planner]:
    from workers.plans import accounts, contacts, ledger  # noqa: F401 - registration

    return PLANNERS


def write_rows(session: Session, entity: EntityType, planned: list[Planned]) -> None:
    """Write each planned row: insert the new ones in one statement, skip the unchanged, refuse the
    changed (``Conflict``) unless the run is ``--upsert``, then update them in one statement. Two rows
    of the batch with one key (two runs' records replayed together): the first is written, the next
    compared with it, in a second round."""
    pending = planned
    while pending:
        first: dict[tuple[Any, ...], Planned] = {}
        now, later = [], []
        for row in pending:
            key = tuple(row.key.values())
            if row.key and key in first:
                later.append(row)
            else:
                first[key] = row
                now.append(row)
        _write_round(session, entity, now)
        for row in later:
            earlier = first[tuple(row.key.values())]
            if earlier.error is None and earlier.target_id is not None and earlier.existing is None:
                row.existing = (earlier.target_id, earlier.values)
        pending = later


def _write_round(session: Session, entity: EntityType, planned: list[Planned]) -> None:
    if not planned:
        return
    inserts, updates = [], []
    for row in planned:
        if row.existing is None:
            inserts.append(row)
            continue
        row.target_id = row.existing[0]
        if _same(row):
            row.outcome = "skipped"
        elif row.env.upsert:
            updates.append(row)
        else:
            row.error = conflict(entity, row)
    dialect = dialect_of(session)
    if inserts:
        returned = dialect.insert_returning(session, planned[0].table, [{**r.key, **r.values} for r in inserts], ("id",))
        for row, (new_id,) in zip(inserts, returned, strict=True):
            row.target_id = new_id
    if updates:
        dialect.update_rows(session, planned[0].table, "id", [{"id": r.target_id, **r.values} for r in updates])


def _same(row: Planned) -> bool:
    if row.same is not None:
        return row.same()
    assert row.existing is not None
    current = row.existing[1]
    return all(current.get(c) == row.values.get(c) for c in (row.compared or tuple(row.values)))


def conflict(entity: EntityType, row: Planned) -> Conflict:
    natural = "\x1f".join(str(row.env.fields.get(f, "")) for f in entity.natural_key)
    names = "+".join(entity.natural_key)
    return Conflict(f"{entity.name} with {names} {show_key(natural)!r} already exists with different content",
                    field=entity.natural_key[-1] if entity.natural_key else None, value=show_key(natural),
                    hint="run with --upsert to update it, or discard this record")
