"""The pre-check screen: the file is staged exactly as `cutover run` stages it (``producer.staging``,
whose last step is ``producer.precheck``), inside a transaction that is rolled back, as `cutover
validate` does. Blocking findings (the run would be refused) stop the import; continuable ones
(account numbers that do not exist) are listed and may be continued with; rows the reader refuses
are listed with their line, field and reason — secret values masked, as in dead letters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from producer.formats import CsvOptions, SourceFile
from producer.precheck import precheck
from producer.readers.csv_profile import Profile
from producer.staging import Stager
from shared.db import engine_for
from shared.dialects import DRY_RUN
from shared.entities import REGISTRY
from shared.errors import SourceError
from shared.schema.control import DeadLetter
from shared.settings import Settings
from shared.vault import PREFIX as VAULT_PREFIX
from shared.vault import SECRET_MASK, Vault

LISTED = 50


def masked_value(entity: str, field: str | None, value: str | None) -> str | None:
    """A dead letter's value as the browser may see it: never a secret field's, never ciphertext."""
    secrets = set(REGISTRY[entity].secret_fields) if entity in REGISTRY else set()
    if value is not None and (field in secrets or str(value).startswith(VAULT_PREFIX)):
        return SECRET_MASK
    return value


def dry_run(settings: Settings, path: Path, shown_name: str, profile: Profile, encoding: str | None) -> dict[str, Any]:
    """The pre-check's findings as a JSON-able document: ``blocking`` (a message, or None), the
    pre-check's ``lines`` and counts, the ``missing`` account numbers and the ``refused`` rows."""
    url = settings.effective_database_url
    with engine_for(url).connect() as conn:
        outer = conn.begin()
        try:
            sf = sessionmaker(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False,
                              info={DRY_RUN: True})
            stager = Stager(sf, REGISTRY, Vault.from_settings(settings), settings.chunk_size, settings.max_field_chars)
            source = SourceFile(path, "csv", CsvOptions(encoding=encoding, mapping=profile))
            try:
                staged = stager.stage([source], {"validate": True})
            except SourceError as exc:
                return {"blocking": _plain(str(exc), path, shown_name), "lines": [], "rows": {}, "missing": [],
                        "missing_rows": 0, "refused": [], "refused_total": 0}
            with sf() as session:
                checked = precheck(session, staged.run_id, profile, create_missing=False)
                letters = session.scalars(select(DeadLetter).where(DeadLetter.run_id == staged.run_id)
                                          .order_by(DeadLetter.line, DeadLetter.id)).all()
                refused = [{"line": d.line, "field": d.field, "value": masked_value(d.entity, d.field, d.value),
                            "error_class": d.error_class, "message": d.message, "hint": d.hint}
                           for d in letters if d.stage == "read"]
            return {"blocking": None, "lines": [_plain(line, path, shown_name) for line in checked.lines()],
                    "rows": dict(checked.rows), "missing": list(checked.missing), "missing_rows": checked.missing_rows,
                    "refused": refused[:LISTED], "refused_total": len(refused)}
        finally:
            outer.rollback()


def _plain(text: str, path: Path, shown_name: str) -> str:
    """Messages name the file as the operator uploaded it, not where the console keeps it."""
    return (text.replace(str(path), shown_name).replace("profile this import's mapping: ", "")
            .replace("this import's mapping: ", ""))
