"""Validation of Responses API requests (`POST /v1/responses`) before anything is stored, billed or enqueued.

The fields the gateway reads, translates or prices are checked as OpenAI documents them, each named when wrong;
fields it does not translate pass through to nobody (OpenAI adds fields often) unless they change what is
billed or answered, which are refused: built-in tools, `conversation`, `prompt` templates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from llmproxy import json_schema as js
from llmproxy.catalog.model_access import Model, catalog_lookup, model_name, usable_model
from llmproxy.catalog.modes import CHAT
from llmproxy.chat.shape_checks import (
    Check,
    check_bool,
    check_choice,
    check_name,
    check_str,
    invalid,
    member,
    number_range,
    optional_str,
    required,
)
from llmproxy.chat.tool_shapes import MAX_TOOLS, check_function_definition, each_tool
from llmproxy.chat.validation import MAX_OUTPUT_TOKENS
from llmproxy.errors import bad_request
from llmproxy.jsontypes import JSON
from llmproxy.keys.virtual_keys import KeyInfo
from llmproxy.responses.input_shapes import INPUT_SCHEMA, check_input
from llmproxy.responses.to_chat import HISTORY
from llmproxy.storage.models import ApiKey
from llmproxy.validation import validate_metadata, validate_metadata_schema

MIN_OUTPUT_TOKENS = 16  # OpenAI's floor for max_output_tokens
_TOOL_CHOICE_MODES = ("none", "auto", "required")
_REFUSED = {
    "conversation": "conversations are not served; chain responses with 'previous_response_id'",
    "prompt": "prompt templates are not served; send 'input' and 'instructions'",
}


@js.describes(js.integer(MIN_OUTPUT_TOKENS, MAX_OUTPUT_TOKENS))
def _max_output_tokens(value: Any, param: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_OUTPUT_TOKENS <= value <= MAX_OUTPUT_TOKENS:
        raise invalid(param, f"an integer from {MIN_OUTPUT_TOKENS} to {MAX_OUTPUT_TOKENS}")


_FUNCTION_TOOL = js.obj(
    {"type": js.const("function"), "name": js.string(), "description": js.nullable(js.string())},
    required=["type", "name"],
)


@js.describes(js.array(_FUNCTION_TOOL, max_items=MAX_TOOLS))
def _tools(tools: Any, param: str) -> None:
    for where, tool in each_tool(tools, param):
        if tool.get("type") != "function":
            raise bad_request(
                f"Invalid '{where}.type': {tool.get('type')!r} tools are not served; only 'function' tools are.",
                param=f"{where}.type",
            )
        check_function_definition(tool, where)


@js.describes(
    js.one_of(
        js.enum(_TOOL_CHOICE_MODES),
        js.obj({"type": js.const("function"), "name": js.string()}, required=["type", "name"]),
    )
)
def _tool_choice(choice: Any, param: str) -> None:
    if isinstance(choice, str):
        check_choice(choice, param, _TOOL_CHOICE_MODES)
        return
    if not isinstance(choice, dict) or choice.get("type") != "function":
        raise invalid(param, "'none', 'auto', 'required' or {\"type\": \"function\", \"name\": ...}")
    check_str(required(choice, "name", param), f"{param}.name")


@js.describes(js.obj({"format": js.obj({"type": js.enum(("text", "json_object", "json_schema"))}, required=["type"])}))
def _text(value: Any, param: str) -> None:
    if not isinstance(value, dict):
        raise invalid(param, "an object")
    if value.get("format") is None:
        return
    where = f"{param}.format"
    fmt = member(value, "format", param)
    kind = fmt.get("type")
    if kind == "json_schema":
        check_name(required(fmt, "name", where), f"{where}.name")
        optional_str(fmt, "description", where)
        if not isinstance(required(fmt, "schema", where), dict):
            raise invalid(f"{where}.schema", "an object")
        if fmt.get("strict") is not None:
            check_bool(fmt["strict"], f"{where}.strict")
    else:
        check_choice(kind, f"{where}.type", ("text", "json_object", "json_schema"))


@js.describes(js.obj({"effort": js.nullable(js.string())}))
def _reasoning(value: Any, param: str) -> None:
    if not isinstance(value, dict):
        raise invalid(param, "an object")
    if value.get("effort") is not None:
        check_str(value["effort"], f"{param}.effort")


@js.describes(validate_metadata_schema())
def _metadata(value: Any, param: str) -> None:
    validate_metadata(value)


# The checks of the optional top-level fields; a null value is not checked (OpenAI takes null as "not set").
_FIELDS: dict[str, Check] = {
    "instructions": check_str,
    "max_output_tokens": _max_output_tokens,
    "temperature": number_range(0, 2),
    "top_p": number_range(0, 1),
    "tools": _tools,
    "tool_choice": _tool_choice,
    "parallel_tool_calls": check_bool,
    "text": _text,
    "reasoning": _reasoning,
    "metadata": _metadata,
    "previous_response_id": check_str,
    "store": check_bool,
    "background": check_bool,
    "stream": check_bool,
    "user": check_str,
    "safety_identifier": check_str,
    "prompt_cache_key": check_str,
}


def response_request_schema() -> js.Schema:
    """The schema of a Responses request body (other members pass through)."""
    properties = {
        "model": js.string(minLength=1),
        "input": INPUT_SCHEMA,
        **{name: js.nullable(js.schema_of(check)) for name, check in _FIELDS.items()},
    }
    return js.obj(properties, required=["model", "input"])


def validate_response_request(
    session: Session, key: ApiKey | KeyInfo, body: JSON, *, lookup: Callable[[str], Model | None] | None = None
) -> Model:
    """Check the body as OpenAI would and that this key may use its (chat) model; return the model."""
    name = model_name(body)
    check_input(body.get("input"))
    if body.get(HISTORY) is not None:  # set by POST /v1/responses; from anyone else, it is only more input
        if not isinstance(body[HISTORY], list):
            raise invalid(HISTORY, "an array of input items")
        check_input(body[HISTORY], HISTORY)
    for field_name, value in body.items():
        check = _FIELDS.get(field_name)
        if check is not None and value is not None:
            check(value, field_name)
        elif field_name in _REFUSED and value is not None:
            raise bad_request(f"'{field_name}': {_REFUSED[field_name]}.", param=field_name)
    if body.get("background") is True and body.get("store") is False:
        raise bad_request("A background response must be stored: 'background' needs 'store' true.", param="store")
    if body.get("background") is True and body.get("stream") is True:
        raise bad_request("Streaming a background response is not served; poll GET /v1/responses/{id}.", param="stream")
    return usable_model(key, name, mode=CHAT, lookup=lookup or catalog_lookup(session))


def stores(body: JSON) -> bool:
    """Whether the response is kept for GET and `previous_response_id` (`store` defaults to true, as OpenAI's)."""
    return body.get("store") is not False
