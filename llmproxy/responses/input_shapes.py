"""The `input` of a Responses request as OpenAI documents it: a string, or items (messages with text and image
parts, function calls and their outputs). Every item is checked before anything is stored; an item or part the
gateway cannot translate for every provider (files, item references, built-in tools' items) is refused by name."""

from __future__ import annotations

from typing import Any

from llmproxy import json_schema as js
from llmproxy.chat.shape_checks import check_choice, check_str, invalid, missing, required
from llmproxy.errors import bad_request

MAX_ITEMS = 10_000
ROLES = ("user", "assistant", "system", "developer")
ITEM_TYPES = ("message", "function_call", "function_call_output")
INPUT_PARTS = ("input_text", "input_image")
OUTPUT_PARTS = ("output_text", "refusal")
IMAGE_DETAILS = ("low", "high", "auto")

_PART = js.obj({"type": js.enum(INPUT_PARTS + OUTPUT_PARTS)}, required=["type"])
_CONTENT = js.one_of(js.string(), js.array(_PART, min_items=1))
_MESSAGE = js.obj(
    {"type": js.const("message"), "role": js.enum(ROLES), "content": _CONTENT}, required=["role", "content"]
)
_CALL = js.obj(
    {"type": js.const("function_call"), "call_id": js.string(), "name": js.string(), "arguments": js.string()},
    required=["type", "call_id", "name", "arguments"],
)
_OUTPUT = js.obj(
    {"type": js.const("function_call_output"), "call_id": js.string(), "output": _CONTENT},
    required=["type", "call_id", "output"],
)
INPUT_SCHEMA = js.one_of(js.string(), js.array(js.one_of(_MESSAGE, _CALL, _OUTPUT), min_items=1, max_items=MAX_ITEMS))


def check_input(value: Any, param: str = "input") -> None:
    """`input`: a string, or 1..MAX_ITEMS items, each named `input[i]` when it is wrong."""
    if value is None:
        raise missing(param)
    if isinstance(value, str):
        return
    if not isinstance(value, list) or not value or len(value) > MAX_ITEMS:
        raise invalid(param, f"a string or an array of 1 to {MAX_ITEMS} input items")
    for i, item in enumerate(value):
        check_item(item, f"{param}[{i}]")


def check_item(item: Any, where: str) -> None:
    """One input item: a message, a function call or a function call's output."""
    if not isinstance(item, dict):
        raise invalid(where, "an object")
    kind = item.get("type", "message")  # a message may leave its type out
    if kind == "message":
        _message(item, where)
    elif kind == "function_call":
        for field in ("call_id", "name", "arguments"):
            check_str(required(item, field, where), f"{where}.{field}")
    elif kind == "function_call_output":
        check_str(required(item, "call_id", where), f"{where}.call_id")
        output = required(item, "output", where)
        if not isinstance(output, str):
            _parts(output, f"{where}.output", INPUT_PARTS)
    else:
        raise bad_request(
            f"Invalid '{where}.type': {kind!r} is not an input item this gateway serves; "
            f"expected one of {', '.join(ITEM_TYPES)}.",
            param=f"{where}.type",
        )


def _message(item: dict[str, Any], where: str) -> None:
    role = required(item, "role", where)
    check_choice(role, f"{where}.role", ROLES)
    content = required(item, "content", where)
    if not isinstance(content, str):
        _parts(content, f"{where}.content", OUTPUT_PARTS if role == "assistant" else INPUT_PARTS)


def _parts(parts: Any, where: str, allowed: tuple[str, ...]) -> None:
    if not isinstance(parts, list) or not parts:
        raise invalid(where, "a string or a non-empty array of content parts")
    for j, part in enumerate(parts):
        at = f"{where}[{j}]"
        if not isinstance(part, dict):
            raise invalid(at, "an object")
        kind = part.get("type")
        if kind not in allowed:
            raise bad_request(
                f"Invalid '{at}.type': {kind!r} is not a content part this gateway serves here; "
                f"expected one of {', '.join(allowed)}.",
                param=f"{at}.type",
            )
        if kind in ("input_text", "output_text"):
            check_str(required(part, "text", at), f"{at}.text")
        elif kind == "refusal":
            check_str(required(part, "refusal", at), f"{at}.refusal")
        else:
            _image(part, at)


def _image(part: dict[str, Any], where: str) -> None:
    if part.get("file_id") is not None:
        raise bad_request(
            f"Invalid '{where}.file_id': images by file id are not served; send 'image_url' (a URL or a data URL).",
            param=f"{where}.file_id",
        )
    check_str(required(part, "image_url", where), f"{where}.image_url")
    if part.get("detail") is not None:
        check_choice(part["detail"], f"{where}.detail", IMAGE_DETAILS)
