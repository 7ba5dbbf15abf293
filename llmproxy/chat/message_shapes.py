"""Chat messages as OpenAI documents them: the roles, each role's content and parts, tool calls.

| role | content | other fields |
|---|---|---|
| system, developer | required: a string or text parts | name |
| user | required: a string or text, image_url, input_audio and file parts | name |
| assistant | a string, text and refusal parts, or null when it has tool_calls or function_call | name, refusal, tool_calls, function_call, audio |
| tool | required: a string or text parts | tool_call_id (required) |
| function (deprecated) | required: a string or null | name (required) |

Fields a message has beyond these pass through untouched (providers add their own).
"""  # noqa: E501

from __future__ import annotations

from typing import Any

from llmproxy import json_schema as js
from llmproxy.chat.shape_checks import (
    Check,
    check_choice,
    check_name,
    check_str,
    invalid,
    member,
    missing,
    optional_str,
    required,
)
from llmproxy.errors import bad_request

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_IMAGE_DETAIL = ("auto", "low", "high")
_AUDIO_FORMATS = ("wav", "mp3")
_PART_TYPES = ("text", "image_url", "input_audio", "file", "refusal")  # which role may send which: see the table

# A message as far as one schema says it (each role's own rules are in the checks below, which are stricter).
_CONTENT = js.one_of(
    js.NULL, js.string(), js.array(js.obj({"type": js.enum(_PART_TYPES)}, required=["type"]), min_items=1)
)
MESSAGE_SCHEMA = js.obj(
    {"role": js.enum(ROLES), "name": js.nullable(js.string()), "content": _CONTENT}, required=["role"]
)


@js.describes(js.array(MESSAGE_SCHEMA, min_items=1))
def check_messages(messages: Any) -> None:
    """`messages`: a non-empty array of messages, each of a known role with that role's content."""
    if messages is None:
        raise bad_request("Missing required parameter: 'messages'", code="missing_field", param="messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' must be a non-empty array", param="messages")
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        role = message.get("role") if isinstance(message, dict) else None
        check = _ROLE_CHECKS.get(role) if isinstance(role, str) else None
        if check is None:
            raise bad_request(f"{where} must be an object whose 'role' is one of {', '.join(ROLES)}", param=where)
        optional_str(message, "name", where)
        check(message, where)


def _instructions(message: dict[str, Any], where: str) -> None:
    _content(required(message, "content", where), f"{where}.content", _TEXT_ONLY)


def _user(message: dict[str, Any], where: str) -> None:
    _content(required(message, "content", where), f"{where}.content", _USER_PARTS)


def _assistant(message: dict[str, Any], where: str) -> None:
    content = message.get("content")
    if content is not None:
        _content(content, f"{where}.content", _ASSISTANT_PARTS)
    elif message.get("tool_calls") is None and message.get("function_call") is None:
        raise missing(f"{where}.content")  # OpenAI: required unless tool_calls or function_call is given
    optional_str(message, "refusal", where)
    tool_calls = message.get("tool_calls")
    if tool_calls is not None:
        if not isinstance(tool_calls, list) or not tool_calls:
            raise invalid(f"{where}.tool_calls", "a non-empty array of tool calls")
        for j, call in enumerate(tool_calls):
            _tool_call(call, f"{where}.tool_calls[{j}]")
    call = message.get("function_call")
    if call is not None:
        _function_call(call, f"{where}.function_call")
    audio = message.get("audio")
    if audio is not None:
        if not isinstance(audio, dict):
            raise invalid(f"{where}.audio", "an object with the 'id' of an earlier audio response")
        check_str(required(audio, "id", f"{where}.audio"), f"{where}.audio.id")


def _tool(message: dict[str, Any], where: str) -> None:
    _content(required(message, "content", where), f"{where}.content", _TEXT_ONLY)
    check_str(required(message, "tool_call_id", where), f"{where}.tool_call_id")


def _function(message: dict[str, Any], where: str) -> None:
    if "content" not in message:
        raise missing(f"{where}.content")
    optional_str(message, "content", where)
    check_str(required(message, "name", where), f"{where}.name")


_ROLE_CHECKS: dict[str, Check] = {
    "system": _instructions,
    "developer": _instructions,
    "user": _user,
    "assistant": _assistant,
    "tool": _tool,
    "function": _function,
}


def _tool_call(call: Any, where: str) -> None:
    """One of an assistant's `tool_calls`: a function call or a custom tool call, with its id."""
    if not isinstance(call, dict):
        raise invalid(where, "an object")
    check_str(required(call, "id", where), f"{where}.id")
    kind = call.get("type")
    if kind == "function":
        _function_call(member(call, "function", where), f"{where}.function")
    elif kind == "custom":
        custom = member(call, "custom", where)
        check_str(required(custom, "name", f"{where}.custom"), f"{where}.custom.name")
        check_str(required(custom, "input", f"{where}.custom"), f"{where}.custom.input")
    else:
        check_choice(kind, f"{where}.type", ("function", "custom"))


def _function_call(call: Any, where: str) -> None:
    """A call the model made: the function's name and its arguments as a JSON string."""
    if not isinstance(call, dict):
        raise invalid(where, "an object with 'name' and 'arguments'")
    check_name(required(call, "name", where), f"{where}.name")
    check_str(required(call, "arguments", where), f"{where}.arguments")


def check_text_content(content: Any, param: str) -> None:
    """Content made of text only: a string or a non-empty array of text parts (also `prediction.content`)."""
    _content(content, param, _TEXT_ONLY)


def _content(content: Any, where: str, parts: dict[str, Check]) -> None:
    """A message's content: a string, or a non-empty array of the parts this role may send."""
    if isinstance(content, str):
        return
    if not isinstance(content, list) or not content:
        raise invalid(where, "a string or a non-empty array of content parts")
    for j, part in enumerate(content):
        at = f"{where}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        check = parts.get(kind) if isinstance(kind, str) else None
        if check is None:
            raise invalid(at, "a content part whose 'type' is one of " + ", ".join(f"'{k}'" for k in parts))
        check(part, at)


def _text_part(part: dict[str, Any], where: str) -> None:
    check_str(required(part, "text", where), f"{where}.text")


def _refusal_part(part: dict[str, Any], where: str) -> None:
    check_str(required(part, "refusal", where), f"{where}.refusal")


def _image_part(part: dict[str, Any], where: str) -> None:
    image = member(part, "image_url", where)
    url = required(image, "url", f"{where}.image_url")
    if not isinstance(url, str) or not url:
        raise invalid(f"{where}.image_url.url", "a URL or a base64 data URL")
    if image.get("detail") is not None:
        check_choice(image["detail"], f"{where}.image_url.detail", _IMAGE_DETAIL)


def _audio_part(part: dict[str, Any], where: str) -> None:
    audio = member(part, "input_audio", where)
    check_str(required(audio, "data", f"{where}.input_audio"), f"{where}.input_audio.data")
    check_choice(required(audio, "format", f"{where}.input_audio"), f"{where}.input_audio.format", _AUDIO_FORMATS)


def _file_part(part: dict[str, Any], where: str) -> None:
    file = member(part, "file", where)
    for key in ("file_data", "file_id", "filename"):
        optional_str(file, key, f"{where}.file")


_TEXT_ONLY: dict[str, Check] = {"text": _text_part}
_USER_PARTS: dict[str, Check] = {
    "text": _text_part,
    "image_url": _image_part,
    "input_audio": _audio_part,
    "file": _file_part,
}
_ASSISTANT_PARTS: dict[str, Check] = {"text": _text_part, "refusal": _refusal_part}
