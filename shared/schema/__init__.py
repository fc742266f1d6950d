"""The database schema, identical on SQLite and PostgreSQL: the target tables a billing system reads
(``target``, ``ledger``, ``subscriptions``, ``portal``, ``services``), cutover's own control tables
(``control``) and the web console's operators, sign-ins, imports and audit (``console``). Alembic
migrations live in ``shared/migrations`` and must match these models (a test compares them)."""

from shared.schema import console, control, ledger, portal, services, subscriptions, target
from shared.schema.base import Base

metadata = Base.metadata

__all__ = ["Base", "console", "control", "ledger", "metadata", "portal", "services", "subscriptions", "target"]
