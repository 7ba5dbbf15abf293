"""Small checks for JSON input; each failure is a 400 naming the field."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Literal, overload

from llmproxy.errors import bad_request
from llmproxy.jsontypes import JSON

# What the columns hold (a bigger number is a 400, not the database's error): INTEGER limits, and money,
# which SQLite keeps as 64-bit pico-dollars (up to about 9.2 million dollars), PostgreSQL as NUMERIC(28, 12).
MAX_INT = 2**31 - 1
MAX_DECIMAL = Decimal(1_000_000)
MAX_METADATA_PAIRS = 16


@overload
def string(data: JSON, name: str, *, required: Literal[True], max_len: int = 512) -> str: ...


@overload
def string(data: JSON, name: str, *, required: bool = False, max_len: int = 512) -> str | None: ...


def string(data: JSON, name: str, *, required: bool = False, max_len: int = 512) -> str | None:
    """A non-empty string field (stripped), or None when absent or null and not required."""
    value = data.get(name)
    if value is None:
        if required:
            raise bad_request(f"Missing required field '{name}'", code="missing_field", param=name)
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise bad_request(f"'{name}' must be a non-empty string of at most {max_len} characters", param=name)
    return value.strip()


def optional_int(data: JSON, name: str, *, minimum: int = 0, maximum: int = MAX_INT) -> int | None:
    """An integer from minimum to maximum, or None."""
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise bad_request(f"'{name}' must be an integer from {minimum} to {maximum} or null", param=name)
    return value


def optional_decimal(data: JSON, name: str) -> Decimal | None:
    """A non-negative decimal of at most MAX_DECIMAL (given as number or string), or None."""
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise bad_request(f"'{name}' must be a non-negative number", param=name)
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise bad_request(f"'{name}' must be a non-negative number", param=name) from None
    if not number.is_finite() or not 0 <= number <= MAX_DECIMAL:
        raise bad_request(f"'{name}' must be a non-negative number of at most {MAX_DECIMAL:f}", param=name)
    return number


def optional_bool(data: JSON, name: str) -> bool | None:
    """A boolean, or None."""
    value = data.get(name)
    if value is None or isinstance(value, bool):
        return value
    raise bad_request(f"'{name}' must be true or false", param=name)


def string_list(data: JSON, name: str) -> list[str] | None:
    """A list of non-empty strings, or None."""
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise bad_request(f"'{name}' must be a list of names", param=name)
    return list(value)


def reject_unknown(data: JSON, allowed: set[str]) -> None:
    """Refuse fields we do not know, so a typo never silently does nothing."""
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise bad_request(f"Unknown field(s): {', '.join(unknown)}", code="unknown_field", param=unknown[0])


def validate_metadata(metadata: object) -> dict[str, str] | None:
    """OpenAI's metadata rules: at most 16 string pairs, keys ≤ 64 and values ≤ 512 characters."""
    if metadata is None:
        return None
    if (
        not isinstance(metadata, dict)
        or len(metadata) > MAX_METADATA_PAIRS
        or not all(
            isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 512 for k, v in metadata.items()
        )
    ):
        raise bad_request(
            "'metadata' must be an object of at most 16 string pairs (keys ≤ 64, values ≤ 512 characters)",
            param="metadata",
        )
    return metadata
