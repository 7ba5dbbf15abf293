"""JSON Schema fragments, each written once beside the code that reads or builds the data it describes.

A check of request input carries the schema of what it accepts (`describes`), and a module that builds a
response object keeps that object's schema next to its builder. The OpenAPI document (`web.openapi`) is
assembled from them, and the fuzz suite holds the code to them: input the schema refuses must be refused,
and every response must match its schema. So a schema that drifts from its code fails a test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeAlias, TypeVar

Schema: TypeAlias = dict[str, Any]
F = TypeVar("F", bound=Callable[..., Any])

ANY: Schema = {}
BOOLEAN: Schema = {"type": "boolean"}
NULL: Schema = {"type": "null"}
NOTHING: Schema = {"not": {}}  # no value is accepted (an option that is always refused)


def string(**constraints: Any) -> Schema:
    """A string (minLength, maxLength, pattern, format… as keywords)."""
    return {"type": "string", **constraints}


def integer(minimum: int | None = None, maximum: int | None = None) -> Schema:
    """An integer, within the bounds given."""
    return _bounded("integer", minimum, maximum)


def number(minimum: float | None = None, maximum: float | None = None) -> Schema:
    """A number, within the bounds given."""
    return _bounded("number", minimum, maximum)


def _bounded(kind: str, minimum: float | None, maximum: float | None) -> Schema:
    schema: Schema = {"type": kind}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    return schema


def enum(values: Iterable[Any]) -> Schema:
    """One of these values."""
    return {"enum": list(values)}


def const(value: Any) -> Schema:
    """Exactly this value."""
    return {"const": value}


def nullable(schema: Schema) -> Schema:
    """The schema, or null."""
    return {"anyOf": [schema, NULL]}


def one_of(*schemas: Schema) -> Schema:
    """Any of these schemas (JSON Schema's anyOf: the alternatives may overlap)."""
    return {"anyOf": list(schemas)}


def array(items: Schema, *, min_items: int | None = None, max_items: int | None = None) -> Schema:
    """An array of `items`."""
    schema: Schema = {"type": "array", "items": items}
    if min_items is not None:
        schema["minItems"] = min_items
    if max_items is not None:
        schema["maxItems"] = max_items
    return schema


def obj(
    properties: Mapping[str, Schema] | None = None,
    *,
    required: Iterable[str] = (),
    extra: bool | Schema = True,
    max_properties: int | None = None,
) -> Schema:
    """An object with these properties; `extra` says what other members may be (True: anything)."""
    schema: Schema = {"type": "object"}
    if properties:
        schema["properties"] = dict(properties)
    names = list(required)
    if names:
        schema["required"] = names
    if extra is not True:
        schema["additionalProperties"] = extra
    if max_properties is not None:
        schema["maxProperties"] = max_properties
    return schema


def record(properties: Mapping[str, Schema]) -> Schema:
    """A response object: every property always present, nothing else."""
    return obj(properties, required=properties, extra=False)


def epoch() -> Schema:
    """Unix seconds, or null (a time that has not come)."""
    return nullable(integer(0))


def money() -> Schema:
    """Dollars as a decimal string (JSON numbers would round), or null."""
    return nullable(string(pattern=r"^-?[0-9]+(\.[0-9]+)?$"))


def describes(schema: Schema) -> Callable[[F], F]:
    """Decorate a check with the schema of the values it accepts."""

    def attach(check: F) -> F:
        check.json_schema = schema  # type: ignore[attr-defined]  # read back by schema_of
        return check

    return attach


def schema_of(check: Callable[..., Any]) -> Schema:
    """The schema a check was described with; a check without one is a programming error."""
    schema: Schema | None = getattr(check, "json_schema", None)
    if schema is None:
        raise TypeError(f"{getattr(check, '__qualname__', check)!r} has no JSON schema: decorate it with @describes")
    return schema
