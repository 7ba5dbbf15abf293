"""Small checks for JSON input; each failure is a 400 naming the field."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, overload

from llmproxy import json_schema as js
from llmproxy.errors import bad_request
from llmproxy.jsontypes import JSON

# What the columns hold (a bigger number is a 400, not the database's error): INTEGER limits, and money,
# which SQLite keeps as 64-bit pico-dollars (up to about 9.2 million dollars), PostgreSQL as NUMERIC(28, 12).
MAX_INT = 2**31 - 1
MAX_DECIMAL = Decimal(1_000_000)
MAX_METADATA_PAIRS = 16
# A decimal given as a string: plain digits with an optional sign, point and exponent (no spaces, underscores,
# NaN or Infinity, all of which Decimal() would take).
DECIMAL_TEXT = r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?"
_DECIMAL_TEXT = re.compile(DECIMAL_TEXT)


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
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, str))
        or (isinstance(value, str) and not _DECIMAL_TEXT.fullmatch(value))
    ):
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


def validate_metadata_schema() -> js.Schema:
    """The schema of what `validate_metadata` accepts."""
    pairs = js.obj(extra=js.string(maxLength=512), max_properties=MAX_METADATA_PAIRS)
    pairs["propertyNames"] = js.string(maxLength=64)
    return js.nullable(pairs)


@dataclass(frozen=True)
class Field:
    """One member of an admin request body: how it is read (checked) and the schema of a value it accepts."""

    read: Callable[[JSON, str], Any]
    schema: js.Schema  # of a present, non-null value
    nullable: bool = True  # null is accepted (it then means "none", or "unchanged" where the route says so)


def text(max_len: int = 512) -> Field:
    """A non-empty string (stripped) of at most `max_len` characters."""
    return Field(
        lambda data, name: string(data, name, max_len=max_len),
        js.string(minLength=1, maxLength=max_len, pattern=r"\S"),
    )


def whole(minimum: int = 0, maximum: int = MAX_INT) -> Field:
    """An integer from `minimum` to `maximum`."""
    return Field(
        lambda data, name: optional_int(data, name, minimum=minimum, maximum=maximum), js.integer(minimum, maximum)
    )


def money(*, nullable: bool = True) -> Field:
    """A non-negative amount of dollars, as a number or a decimal string."""
    number = js.one_of(js.number(0, float(MAX_DECIMAL)), js.string(pattern=f"^{DECIMAL_TEXT}$"))

    def read(data: JSON, name: str) -> Decimal | None:
        value = optional_decimal(data, name)
        if value is None and not nullable:
            raise bad_request(f"'{name}' must be a non-negative number", param=name)
        return value

    return Field(read, number, nullable)


def flag() -> Field:
    """true or false."""
    return Field(optional_bool, js.BOOLEAN)


def names() -> Field:
    """A list of non-empty strings."""
    return Field(string_list, js.array(js.string(minLength=1)))


def secret() -> Field:
    """Any string (a credential; empty or null removes it)."""

    def read(data: JSON, name: str) -> str | None:
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            raise bad_request(f"'{name}' must be a string or null", param=name)
        return value

    return Field(read, js.string())


def choice(values: Iterable[str]) -> Field:
    """One of `values`."""
    allowed = list(values)

    def read(data: JSON, name: str) -> str | None:
        value = string(data, name)
        if value is not None and value not in allowed:
            raise bad_request(f"'{name}' must be one of {', '.join(allowed)}", param=name)
        return value

    return Field(read, js.enum(allowed))


class Body:
    """The members an admin route's JSON body may have: read one by one, and described as one schema."""

    def __init__(self, fields: Mapping[str, Field], *, required: Iterable[str] = ()) -> None:
        self.fields = dict(fields)
        self.required = tuple(required)

    def check_known(self, data: JSON, *, fixed: Iterable[str] = ()) -> None:
        """Refuse members this body does not have (and those `fixed` by the route, like a name in the path)."""
        reject_unknown(data, set(self.fields) - set(fixed))

    def read(self, data: JSON, name: str) -> Any:
        """The member, checked: a 400 naming it when it is not what the field accepts; None when absent or null."""
        return self.fields[name].read(data, name)

    def require(self, data: JSON, name: str) -> Any:
        """A member that must be present and not null (400 missing_field), read as `read` does."""
        if data.get(name) is None:
            raise bad_request(f"Missing required field '{name}'", code="missing_field", param=name)
        return self.read(data, name)

    def schema(self, *, creating: bool, fixed: Iterable[str] = ()) -> js.Schema:
        """The body's schema when creating (required members present, not null) or changing a row."""
        skip = set(fixed)
        required = [name for name in self.required if creating and name not in skip]
        properties = {
            name: field.schema if name in required or not field.nullable else js.nullable(field.schema)
            for name, field in self.fields.items()
            if name not in skip
        }
        return js.obj(properties, required=required, extra=False)
