"""Validation of chat-completion requests before anything is stored, billed or enqueued.

Every field the gateway reads, prices or forwards is checked as OpenAI documents it, in one pass over the
body's fields (a table lookup each); fields not listed pass through untouched, since OpenAI adds fields often.
Messages are checked in `message_shapes`, tools and response formats in `tool_shapes`; options the catalog's
one price per model cannot bill (service tiers, audio output, predicted outputs, web search) are refused in
`priced_options`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from llmproxy import json_schema as js
from llmproxy.catalog.model_access import Model, catalog_lookup, model_name, usable_model
from llmproxy.catalog.modes import CHAT
from llmproxy.chat.message_shapes import check_messages
from llmproxy.chat.priced_options import (
    check_audio,
    check_modalities,
    check_prediction,
    check_service_tier,
    check_web_search_options,
)
from llmproxy.chat.shape_checks import (
    Check,
    check_bool,
    check_str,
    int_range,
    invalid,
    is_number,
    number_range,
)
from llmproxy.chat.tool_shapes import (
    check_function_call,
    check_functions,
    check_response_format,
    check_tool_choice,
    check_tools,
)
from llmproxy.errors import bad_request
from llmproxy.jsontypes import JSON
from llmproxy.keys.virtual_keys import KeyInfo
from llmproxy.storage.models import ApiKey
from llmproxy.validation import validate_metadata, validate_metadata_schema

MAX_N = 128  # OpenAI's bound on `n`: more choices than this are refused, not generated
MAX_STOP = 4
MAX_OUTPUT_TOKENS = 2**31 - 1  # far beyond any model's output limit
INT64 = (-(2**63), 2**63 - 1)


@js.describes(js.integer(1, MAX_OUTPUT_TOKENS))
def _output_cap(value: Any, param: str) -> None:
    # Bounded so that a reservation (this times `n`) stays an exact integer in Redis.
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_OUTPUT_TOKENS:
        raise bad_request(f"'{param}' must be a positive integer of at most {MAX_OUTPUT_TOKENS}", param=param)


@js.describes(js.one_of(js.string(), js.array(js.string(), max_items=MAX_STOP)))
def _stop(value: Any, param: str) -> None:
    if isinstance(value, str):
        return
    if not isinstance(value, list) or len(value) > MAX_STOP or not all(isinstance(s, str) for s in value):
        raise invalid(param, f"a string or an array of at most {MAX_STOP} strings")


@js.describes({**js.obj(extra=js.number(-100, 100)), "propertyNames": js.string(pattern="^[0-9]+$")})
def _logit_bias(value: Any, param: str) -> None:
    if not isinstance(value, dict):
        raise invalid(param, "an object mapping token ids to biases from -100 to 100")
    for token, bias in value.items():
        if not (token.isascii() and token.isdigit()) or not is_number(bias) or not -100 <= bias <= 100:
            raise invalid(f"{param}.{token}", "a token id (digits) mapped to a bias from -100 to 100")


@js.describes(js.obj({flag: js.nullable(js.BOOLEAN) for flag in ("include_usage", "include_obfuscation")}))
def _stream_options(value: Any, param: str) -> None:
    if not isinstance(value, dict):
        raise bad_request("'stream_options' must be an object", param=param)
    for flag in ("include_usage", "include_obfuscation"):
        if value.get(flag) is not None:
            check_bool(value[flag], f"{param}.{flag}")


@js.describes(validate_metadata_schema())
def _metadata(value: Any, param: str) -> None:
    validate_metadata(value)


# The checks of the optional top-level fields; a null value is not checked (OpenAI takes null as "not set").
_FIELDS: dict[str, Check] = {
    "n": int_range(1, MAX_N),
    "max_tokens": _output_cap,
    "max_completion_tokens": _output_cap,
    "temperature": number_range(0, 2),
    "top_p": number_range(0, 1),
    "presence_penalty": number_range(-2, 2),
    "frequency_penalty": number_range(-2, 2),
    "stop": _stop,
    "logit_bias": _logit_bias,
    "logprobs": check_bool,
    "top_logprobs": int_range(0, 20),
    "seed": int_range(*INT64),
    "stream_options": _stream_options,
    "tools": check_tools,
    "tool_choice": check_tool_choice,
    "parallel_tool_calls": check_bool,
    "functions": check_functions,
    "function_call": check_function_call,
    "response_format": check_response_format,
    "metadata": _metadata,
    "store": check_bool,
    "user": check_str,
    "safety_identifier": check_str,
    "prompt_cache_key": check_str,
    "reasoning_effort": check_str,
    "verbosity": check_str,
    # Options priced apart from the catalog's one price per model: refused (see priced_options).
    "service_tier": check_service_tier,
    "modalities": check_modalities,
    "audio": check_audio,
    "prediction": check_prediction,
    "web_search_options": check_web_search_options,
}


def chat_request_schema() -> js.Schema:
    """The schema of a chat-completion body, assembled from the checks above (other members pass through)."""
    properties = {
        "model": js.string(minLength=1),
        "messages": js.schema_of(check_messages),
        "stream": js.BOOLEAN,
        **{name: js.nullable(js.schema_of(check)) for name, check in _FIELDS.items()},
    }
    return js.obj(properties, required=["model", "messages"])


def validate_chat_request(
    session: Session, key: ApiKey | KeyInfo, body: JSON, *, lookup: Callable[[str], Model | None] | None = None
) -> Model:
    """Check the body as OpenAI would and that this key may use its model; return the model.

    `lookup` replaces the catalog query (a batch validates thousands of lines against a few models).
    """
    name = model_name(body)
    check_messages(body.get("messages"))
    if "stream" in body and not isinstance(body["stream"], bool):
        raise bad_request("'stream' must be a boolean", param="stream")
    for field_name, value in body.items():
        check = _FIELDS.get(field_name)
        if check is not None and value is not None:
            check(value, field_name)
    if body.get("stream_options") is not None and body.get("stream") is not True:
        raise bad_request("'stream_options' is only allowed when 'stream' is true", param="stream_options")
    if body.get("top_logprobs") is not None and body.get("logprobs") is not True:
        raise bad_request("'top_logprobs' needs 'logprobs' set to true", param="top_logprobs")
    return usable_model(key, name, mode=CHAT, lookup=lookup or catalog_lookup(session))


def wants_usage_chunk(body: JSON) -> bool:
    """Whether a streaming caller asked for the final usage chunk."""
    options = body.get("stream_options") or {}
    return bool(options.get("include_usage"))
