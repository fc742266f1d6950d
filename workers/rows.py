"""Write-or-compare for rows identified by a natural key: the pattern most loaders share."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from workers.context import LoadContext, Loaded


def put(ctx: LoadContext, model: Any, key: dict[str, Any], values: dict[str, Any]) -> Loaded:
    """Insert ``model(**key, **values)``, or, when a row with ``key`` exists: skipped if it holds
    ``values`` already, else a Conflict (``--upsert``: updated)."""
    existing = ctx.session.scalar(select(model).filter_by(**key))
    if existing is None:
        row = model(**key, **values)
        ctx.session.add(row)
        ctx.session.flush()
        return Loaded(row.id)
    found = existing

    def update() -> None:
        for column, value in values.items():
            setattr(found, column, value)
    return ctx.existing(found.id, update, same=all(getattr(found, c) == v for c, v in values.items()))
