"""The database schema, identical on SQLite and PostgreSQL: the target tables a billing system reads
(``target``) and cutover's own control tables (``control``). Alembic migrations live in
``shared/migrations`` and must match these models (a test compares them)."""

from shared.schema.base import Base
from shared.schema import control, target  # noqa: F401 - registers the tables on Base.metadata

metadata = Base.metadata

__all__ = ["Base", "metadata", "control", "target"]
