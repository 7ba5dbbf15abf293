"""Timestamps as stored: timezone-aware UTC, and unix seconds for the API."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Timezone-aware now in UTC."""
    return datetime.now(UTC)


def to_epoch(value: datetime | None) -> int | None:
    """Unix seconds for a stored datetime (SQLite hands back naive UTC values)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp())
