"""Milliseconds, the unit of every time kept in Redis for jobs."""

from __future__ import annotations


def ms(seconds: float) -> int:
    """Whole milliseconds of a duration or a unix time in seconds."""
    return int(seconds * 1000)
