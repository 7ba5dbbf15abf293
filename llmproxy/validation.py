"""Small checks for JSON input; each failure is a 400 naming the field."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Literal, overload

from llmproxy.errors import bad_request
from llmproxy.jsontypes import JSON


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


def optional_int(data: JSON, name: str, *, minimum: int = 0) -> int | None:
    """An integer ≥ minimum, or None."""
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise bad_request(f"'{name}' must be an integer ≥ {minimum} or null", param=name)
    return value


def optional_decimal(data: JSON, name: str) -> Decimal | None:
    """A non-negative decimal (given as number or string), or None."""
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise bad_request(f"'{name}' must be a non-negative number", param=name)
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise bad_request(f"'{name}' must be a non-negative number", param=name) from None
    if not number.is_finite() or number < 0:
        raise bad_request(f"'{name}' must be a non-negative number", param=name)
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
