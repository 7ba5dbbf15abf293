"""Column types shared by the models and the migrations."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import BigInteger, Numeric, TypeDecorator

MONEY_SCALE = 12
_MONEY_FACTOR = Decimal(10) ** MONEY_SCALE
MONEY_QUANTUM = Decimal(1).scaleb(-MONEY_SCALE)


class Money(TypeDecorator):
    """Exact money: NUMERIC(28, 12) on PostgreSQL; integer pico-dollars on SQLite, whose NUMERIC is a float."""

    impl = Numeric(28, MONEY_SCALE)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(28, MONEY_SCALE, asdecimal=True))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        value = Decimal(value).quantize(MONEY_QUANTUM)
        if dialect.name == "sqlite":
            return int(value * _MONEY_FACTOR)
        return value

    def process_result_value(self, value, dialect):
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
