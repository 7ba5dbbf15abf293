"""Column types shared by the models and the migrations."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Numeric, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

MONEY_SCALE = 12
_MONEY_FACTOR = Decimal(10) ** MONEY_SCALE
MONEY_QUANTUM = Decimal(1).scaleb(-MONEY_SCALE)


class Money(TypeDecorator[Decimal]):
    """Exact money: NUMERIC(28, 12) on PostgreSQL; integer pico-dollars on SQLite, whose NUMERIC is a float."""

    impl = Numeric(28, MONEY_SCALE)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """BIGINT pico-dollars on SQLite, exact NUMERIC elsewhere."""
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(28, MONEY_SCALE, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Decimal | int | None:
        """The amount as the column stores it: at storage precision, and as pico-dollars on SQLite."""
        if value is None:
            return None
        value = Decimal(value).quantize(MONEY_QUANTUM)
        if dialect.name == "sqlite":
            return int(value * _MONEY_FACTOR)
        return value

    def process_result_value(self, value: Any | None, dialect: Dialect) -> Decimal | None:
        """The stored value back as a Decimal at storage precision."""
        if value is None:
            return None
        if dialect.name == "sqlite":
            return (Decimal(int(value)) / _MONEY_FACTOR).quantize(MONEY_QUANTUM)
        return Decimal(value).quantize(MONEY_QUANTUM)


def money(value: Decimal | None) -> str | None:
    """Money as a decimal string without trailing zeros (JSON numbers would round)."""
    if value is None:
        return None
    return format(value.normalize(), "f")
