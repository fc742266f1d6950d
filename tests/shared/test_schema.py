"""The Alembic migrations build exactly the SQLAlchemy models, on SQLite and on PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from shared.db import engine_for, upgrade
from shared.schema import metadata


def test_migrations_match_models(database_url: str) -> None:
    upgrade(database_url)
    with engine_for(database_url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
        tables = set(conn.dialect.get_table_names(conn))
    assert diff == []
    assert set(metadata.tables) <= tables
    engine_for(database_url).dispose()
