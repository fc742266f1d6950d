"""The database schema, identical on SQLite and PostgreSQL: the target tables a billing system reads
(``target``, ``ledger``, ``subscriptions``, ``portal``, ``services``) and cutover's own control tables
(``control``). Alembic migrations live in
``shared/migrations`` and must match these models (a test compares them)."""

from shared.schema import control, ledger, portal, services, subscriptions, target
from shared.schema.base import Base

metadata = Base.metadata

__all__ = ["Base", "control", "ledger", "metadata", "portal", "services", "subscriptions", "target"]
