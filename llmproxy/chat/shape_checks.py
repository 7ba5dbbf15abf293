"""What the chat request validators share: OpenAI-style 400s naming the parameter, and small type checks.

Each check takes the value and its parameter path (`messages[2].content`, `tools[0].function.name`) and
raises an ApiError naming that path; it returns nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from typing import Any, TypeAlias

from llmproxy import json_schema as js
from llmproxy.errors import ApiError, bad_request

# A check of one value: it raises an ApiError naming the parameter, or returns nothing.
Check: TypeAlias = Callable[[Any, str], None]

# OpenAI's rule for function (tool) names and json_schema names.
NAME_PATTERN = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def invalid(param: str, expected: str) -> ApiError:
    """400 invalid_request naming `param`: what was expected of it."""
    return bad_request(f"Invalid '{param}': expected {expected}.", param=param)


def missing(param: str) -> ApiError:
    """400 missing_field naming `param`."""
    return bad_request(f"Missing required parameter: '{param}'.", code="missing_field", param=param)


def is_int(value: Any) -> bool:
    """A JSON integer (true and false are not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A JSON number (true and false are not)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@js.describes(js.string())
def check_str(value: Any, param: str) -> None:
    """A string."""
    if not isinstance(value, str):
        raise invalid(param, "a string")


@js.describes(js.BOOLEAN)
def check_bool(value: Any, param: str) -> None:
    """true or false."""
    if not isinstance(value, bool):
        raise invalid(param, "a boolean")


def check_object(value: Any, param: str) -> None:
    """A JSON object."""
    if not isinstance(value, dict):
        raise invalid(param, "an object")


def check_choice(value: Any, param: str, choices: Collection[str]) -> None:
    """One of `choices`."""
    if not isinstance(value, str) or value not in choices:
        raise invalid(param, "one of " + ", ".join(f"'{c}'" for c in sorted(choices)))


def check_name(value: Any, param: str) -> None:
    """A function or schema name as OpenAI takes it: 1 to 64 of a-z, A-Z, 0-9, _ and -."""
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise invalid(param, "a name of 1 to 64 characters a-z, A-Z, 0-9, underscores and dashes")


def required(obj: dict[str, Any], key: str, where: str) -> Any:
    """`obj[key]`, which must be present and not null."""
    value = obj.get(key)
    if value is None:
        raise missing(f"{where}.{key}")
    return value


def optional_str(obj: dict[str, Any], key: str, where: str) -> None:
    """`obj[key]` is a string when present and not null."""
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise invalid(f"{where}.{key}", "a string")


def member(obj: Any, key: str, where: str) -> dict[str, Any]:
    """`obj[key]`, which must be an object (e.g. a tool's `function`)."""
    value = required(obj, key, where)
    if not isinstance(value, dict):
        raise invalid(f"{where}.{key}", "an object")
    return value


def int_range(low: int, high: int) -> Check:
    """A check that the value is an integer from `low` to `high`."""

    @js.describes(js.integer(low, high))
    def check(value: Any, param: str) -> None:
        if not is_int(value) or not low <= value <= high:
            raise invalid(param, f"an integer from {low} to {high}")

    return check


def number_range(low: float, high: float) -> Check:
    """A check that the value is a number from `low` to `high`."""

    @js.describes(js.number(low, high))
    def check(value: Any, param: str) -> None:
        if not is_number(value) or not low <= value <= high:
            raise invalid(param, f"a number from {low:g} to {high:g}")

    return check
