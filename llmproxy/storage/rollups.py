"""The usage rollup: the ledger summed per minute and per hour, per key, model and provider, kept up to date by
the writer in the transaction that bills (llmproxy.billing.rollup); and failed jobs counted per error code.

The dashboard's charts and usage tables read these, never the ledger itself, so its pages stay fast with
millions of ledger rows; they sum exactly what /admin/usage sums from the ledger.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, DateTime, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from llmproxy.storage.models import Base
from llmproxy.storage.money import Money

MINUTE, HOUR = "m", "h"
MINUTE_ROLLUP_DAYS = 2  # minute rows are kept this long (retention); the 24 h charts read them, longer ranges hours
# Upper bounds (ms) of the latency histogram's buckets; the last bucket (lat_9) is everything slower.
LATENCY_BOUNDS_MS = (100, 250, 500, 1000, 2000, 5000, 10_000, 30_000, 60_000)
LATENCY_BUCKETS = tuple(f"lat_{i}" for i in range(len(LATENCY_BOUNDS_MS) + 1))
_ID = BigInteger().with_variant(Integer, "sqlite")


class UsageRollup(Base):
    """Billed requests of one minute or hour (`granularity` m|h) for one key, served model and provider."""

    __tablename__ = "usage_rollup"
    __table_args__ = (
        UniqueConstraint("granularity", "bucket", "api_key_id", "model", "provider", name="uq_usage_rollup"),
        Index("ix_usage_rollup_bucket", "granularity", "bucket"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    granularity: Mapped[str] = mapped_column(String(1))
    bucket: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    api_key_id: Mapped[str] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(128))
    provider: Mapped[str] = mapped_column(String(64))  # "" when the ledger row names none
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_usd: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    latency_ms_sum: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_0: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_1: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_2: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_3: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_4: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_5: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_6: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_7: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_8: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_9: Mapped[int] = mapped_column(BigInteger, default=0)


class ErrorRollup(Base):
    """Failed jobs of one minute or hour for one key and requested model, by error code."""

    __tablename__ = "error_rollup"
    __table_args__ = (
        UniqueConstraint("granularity", "bucket", "api_key_id", "model", "code", name="uq_error_rollup"),
        Index("ix_error_rollup_bucket", "granularity", "bucket"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    granularity: Mapped[str] = mapped_column(String(1))
    bucket: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    api_key_id: Mapped[str] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(128))
    code: Mapped[str] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(BigInteger, default=0)
