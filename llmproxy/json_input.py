"""Parsing JSON that comes from outside (request bodies, batch input lines) into values every part can hold.

Refused with `JsonInputError` (a ValueError naming where, when it can):

* nesting deeper than MAX_DEPTH arrays and objects: the C parser would recurse until RecursionError, and so
  would everything after it that walks the value (json.dumps, the token counter, the Celery hand-off);
* U+0000 in any string or key: PostgreSQL refuses NUL in text (a model name, a key name, ...);
* a lone UTF-16 surrogate (`"\\ud800"` with no pair): not encodable as UTF-8, so both databases' drivers
  and every upstream fail on it;
* NaN and ±Infinity (`NaN`, `1e999`): not JSON; json.dumps would write them back and PostgreSQL's json type
  and the upstreams refuse that.

Cost on the hot path (a few KB of ordinary JSON): the parse, two byte counts and one substring search.
Only text that might break a rule — more than MAX_DEPTH brackets, or a `\\u` escape that could be a NUL or a
lone surrogate — is looked at again: its depth from the raw text (before parsing, at C speed), its strings by
one walk of the parsed value.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from typing import Any

MAX_DEPTH = 64

_ESCAPE = re.compile(rb"\\.", re.DOTALL)  # a backslash and the character it escapes (an escaped quote too)
_ALL_BUT_QUOTES_AND_BRACKETS = bytes(sorted(set(range(256)) - set(b'"[]{}')))  # for bytes.translate to delete
_OPEN_CLOSE = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 / -1 once read as signed bytes
_ALL_BUT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE_PAIR = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}")


class JsonInputError(ValueError):
    """JSON that parses but may not be taken in; `param` is the path of the offending value, when known."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def parse_json(raw: bytes | str) -> Any:
    """The parsed value; ValueError if `raw` is not JSON (or not UTF-8/16/32), JsonInputError if it breaks a rule."""
    if isinstance(raw, str):
        text, data = raw, raw.encode("utf-8", "surrogatepass")
    else:
        # Decoded strictly, unlike json.loads(bytes), which lets UTF-8-encoded lone surrogates through.
        encoding = json.detect_encoding(raw)
        text = raw.decode(encoding)
        data = raw if encoding == "utf-8" else text.encode("utf-8", "surrogatepass")
    if data.count(b"[") + data.count(b"{") > MAX_DEPTH and _depth(data) > MAX_DEPTH:
        raise _too_deep()
    try:
        value = _DECODER.decode(text)
    except RecursionError:  # only if the depth scan misread text that is not JSON anyway
        raise _too_deep() from None
    if b"\\u" in data and _may_hold_bad_strings(data):
        _check_strings(value)
    return value


def _depth(data: bytes) -> int:
    """The deepest nesting of arrays and objects in UTF-8 JSON text, strings left out; all of it at C speed."""
    # Without escapes, every quote left opens or closes a string: the even pieces between quotes are outside.
    outside = b"".join(_ESCAPE.sub(b"", data).translate(None, _ALL_BUT_QUOTES_AND_BRACKETS).split(b'"')[::2])
    steps = memoryview(outside.translate(_OPEN_CLOSE, _ALL_BUT_BRACKETS)).cast("b")
    return max(itertools.accumulate(steps), default=0)


def _may_hold_bad_strings(data: bytes) -> bool:
    # An escaped backslash (the JSON text "\\u0000" holds no NUL) makes these over-report; the walk decides.
    if b"\\u0000" in data:
        return True
    surrogates = len(_SURROGATE_ESCAPE.findall(data))
    return surrogates > 0 and surrogates != 2 * len(_SURROGATE_PAIR.findall(data))


def _check_strings(value: Any) -> None:
    """Raise JsonInputError at the first string or key holding NUL or a lone surrogate (depth is bounded)."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            _check_string(item, path)
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_string(key, path)
                stack.append((child, (*path, key)))
        elif isinstance(item, list):
            stack.extend((child, (*path, i)) for i, child in enumerate(item))


def _check_string(text: str, path: tuple[str | int, ...]) -> None:
    if "\x00" in text:
        raise JsonInputError("Strings must not contain U+0000 (NUL)", _param(path))
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise JsonInputError(
                "Strings must not contain a lone UTF-16 surrogate (a \\ud800-\\udfff escape without its pair)",
                _param(path),
            ) from None


def _param(path: tuple[str | int, ...]) -> str | None:
    """`("messages", 0, "content")` → `messages[0].content`."""
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else step)
    return out or None


def _too_deep() -> JsonInputError:
    return JsonInputError(f"JSON nested deeper than {MAX_DEPTH} levels of arrays and objects is not accepted")


def _refuse_constant(name: str) -> float:
    raise JsonInputError(f"{name} is not a JSON number")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if math.isinf(value):
        raise JsonInputError(f"The number {literal[:40]} is too large")
    return value


# One decoder for every call: json.loads with hooks would build a new one (and its scanner) each time.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)
