"""Money columns: exact decimals on every database.

PostgreSQL stores ``NUMERIC(19, 4)``. SQLite has no exact decimal type (SQLAlchemy would go through
float), so there the column holds whole ten-thousandths as an integer: sums and ``x = x + :y``
updates stay exact in SQL, and values come back as ``Decimal`` either way."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Numeric
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

SCALE = 4
QUANTUM = Decimal(1).scaleb(-SCALE)


class Money(TypeDecorator[Decimal]):
    """An amount with four decimal places (the seed's ``2.0000``). More places are refused when the
    value is written, never rounded silently: readers check them first, so this is a bug guard."""

    impl = Numeric(19, SCALE)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if _as_integer(dialect.name):
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(19, SCALE, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        amount = Decimal(value)
        exact = amount.quantize(QUANTUM)
        if exact != amount:
            raise ValueError(f"amount {amount} has more than {SCALE} decimal places")
        return int(exact.scaleb(SCALE)) if _as_integer(dialect.name) else exact

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if _as_integer(dialect.name):
            return Decimal(int(value)).scaleb(-SCALE).quantize(QUANTUM)
        return Decimal(value).quantize(QUANTUM)


def _as_integer(name: str) -> bool:
    """Whether the database keeps money as an integer (its dialect says: ``shared/dialects``)."""
    from shared.dialects import dialect_for

    return dialect_for(name).money_as_integer
