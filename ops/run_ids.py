"""`last` (or `-`) wherever a command asks for a run id: the newest run, so an operator can type
`cutover reconcile last` right after a run."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.errors import ConfigError
from shared.schema.control import Run

LATEST = ("last", "-")


def resolve_run_id(session: Session, text: str, replays: bool = False) -> str:
    """``text`` itself, or for ``last``/``-`` the id of the newest run (with ``replays``: run or replay)."""
    if text not in LATEST:
        return text
    query = select(Run.id).order_by(Run.created_at.desc(), Run.id.desc()).limit(1)
    if not replays:
        query = query.where(Run.kind == "run")
    found = session.scalar(query)
    if found is None:
        raise ConfigError(f"{text!r} stands for the newest run, and there is none yet: `cutover run FILES` starts one")
    return found
