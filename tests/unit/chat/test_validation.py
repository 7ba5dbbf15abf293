"""Chat request validation, as OpenAI would answer, with a `lookup` standing in for the catalog (no database)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest

from llmproxy.chat.validation import validate_chat_request
from llmproxy.errors import ApiError
from llmproxy.keys.virtual_keys import KeyInfo

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]


@dataclass(frozen=True)
class Model:
    name: str
    enabled: bool = True
    mode: str = "chat"


CATALOG = {
    "gpt-4o-mini": Model("gpt-4o-mini"),
    "gpt-4": Model("gpt-4"),
    "retired": Model("retired", enabled=False),
    "embedder": Model("embedder", mode="embedding"),
}


class Lookup:
    """The catalog as a callable, remembering what it was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __call__(self, name: str) -> Model | None:
        self.asked.append(name)
        return CATALOG.get(name)


def key(allowed_models: list[str] | None = None) -> KeyInfo:
    return KeyInfo(
        id="key_1",
        name="k",
        prefix="sk-abcdefg",
        rpm_limit=None,
        tpm_limit=None,
        budget_usd=None,
        spend_usd=Decimal(0),
        allowed_models=allowed_models,
    )


def refused(body: dict, key_info: KeyInfo | None = None, lookup: Lookup | None = None) -> ApiError:
    with pytest.raises(ApiError) as info:
        validate_chat_request(None, key_info or key(), body, lookup=lookup or Lookup())
    return info.value


def test_a_valid_request_returns_the_catalog_model():
    lookup = Lookup()
    body = {
        "model": "gpt-4o-mini",
        "messages": MESSAGES,
        "stream": True,
        "max_tokens": 1,
        "n": 2,
        "stream_options": {"include_usage": True},
    }
    assert validate_chat_request(None, key(), body, lookup=lookup) is CATALOG["gpt-4o-mini"]
    assert lookup.asked == ["gpt-4o-mini"]


@pytest.mark.parametrize(
    "message",
    [
        {"role": "system", "content": "x"},
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": "x"},
        {"role": "tool", "content": "x", "tool_call_id": "call_1"},
        {"role": "function", "content": "x", "name": "f"},
        {"role": "developer", "content": "x"},
    ],
    ids=lambda m: m["role"],
)
def test_every_openai_role_is_accepted(message):
    body = {"model": "gpt-4", "messages": [message]}
    assert validate_chat_request(None, key(), body, lookup=Lookup()) is CATALOG["gpt-4"]


@pytest.mark.parametrize(
    "body, code, param",
    [
        ({"messages": MESSAGES}, "missing_field", "model"),
        ({"model": None, "messages": MESSAGES}, "missing_field", "model"),
        ({"model": "", "messages": MESSAGES}, "invalid_request", "model"),
        ({"model": 4, "messages": MESSAGES}, "invalid_request", "model"),
        ({"model": "gpt-4"}, "missing_field", "messages"),
        ({"model": "gpt-4", "messages": []}, "invalid_request", "messages"),
        ({"model": "gpt-4", "messages": "hello"}, "invalid_request", "messages"),
        ({"model": "gpt-4", "messages": ["hello"]}, "invalid_request", "messages[0]"),
        (
            {"model": "gpt-4", "messages": [*MESSAGES, {"role": "robot", "content": "x"}]},
            "invalid_request",
            "messages[2]",
        ),
        ({"model": "gpt-4", "messages": [{"content": "no role"}]}, "invalid_request", "messages[0]"),
        ({"model": "gpt-4", "messages": MESSAGES, "stream": "true"}, "invalid_request", "stream"),
        ({"model": "gpt-4", "messages": MESSAGES, "stream": 1}, "invalid_request", "stream"),
        ({"model": "gpt-4", "messages": MESSAGES, "stream": None}, "invalid_request", "stream"),
        ({"model": "gpt-4", "messages": MESSAGES, "max_tokens": 0}, "invalid_request", "max_tokens"),
        ({"model": "gpt-4", "messages": MESSAGES, "max_tokens": -5}, "invalid_request", "max_tokens"),
        ({"model": "gpt-4", "messages": MESSAGES, "max_tokens": 1.5}, "invalid_request", "max_tokens"),
        ({"model": "gpt-4", "messages": MESSAGES, "max_tokens": "10"}, "invalid_request", "max_tokens"),
        ({"model": "gpt-4", "messages": MESSAGES, "max_tokens": True}, "invalid_request", "max_tokens"),
        (
            {"model": "gpt-4", "messages": MESSAGES, "max_completion_tokens": 0},
            "invalid_request",
            "max_completion_tokens",
        ),
        ({"model": "gpt-4", "messages": MESSAGES, "n": 0}, "invalid_request", "n"),
        (
            {"model": "gpt-4", "messages": MESSAGES, "stream_options": "include_usage"},
            "invalid_request",
            "stream_options",
        ),
        ({"model": "gpt-4", "messages": MESSAGES, "stream_options": []}, "invalid_request", "stream_options"),
    ],
)
def test_a_malformed_body_is_400_naming_the_parameter_before_the_catalog_is_asked(body, code, param):
    lookup = Lookup()
    error = refused(body, lookup=lookup)
    assert (error.status, error.type, error.code, error.param) == (400, "invalid_request_error", code, param)
    assert lookup.asked == []


@pytest.mark.parametrize("name", ["gpt-5-imaginary", "retired"])
def test_an_unknown_or_disabled_model_is_400_model_not_found(name):
    error = refused({"model": name, "messages": MESSAGES})
    assert (error.status, error.type, error.code, error.param) == (
        400,
        "invalid_request_error",
        "model_not_found",
        "model",
    )
    assert f"`{name}`" in error.message


def test_an_embedding_model_is_400_saying_what_it_is_before_the_key_is_asked():
    error = refused({"model": "embedder", "messages": MESSAGES}, key(allowed_models=[]))
    assert (error.status, error.code, error.param) == (400, "model_not_found", "model")
    assert "`embedder` is an embedding model: call /v1/embeddings" in error.message


def test_a_key_restricted_to_other_models_is_403_model_not_allowed():
    error = refused({"model": "gpt-4", "messages": MESSAGES}, key(allowed_models=["gpt-4o-mini"]))
    assert (error.status, error.type, error.code) == (403, "permission_error", "model_not_allowed")
    assert "`gpt-4`" in error.message


def test_a_key_with_no_allowed_models_may_use_none():
    error = refused({"model": "gpt-4", "messages": MESSAGES}, key(allowed_models=[]))
    assert (error.status, error.code) == (403, "model_not_allowed")


def test_a_key_allowed_the_model_may_use_it():
    body = {"model": "gpt-4", "messages": MESSAGES}
    assert validate_chat_request(None, key(["gpt-4o-mini", "gpt-4"]), body, lookup=Lookup()) is CATALOG["gpt-4"]


def test_an_unknown_model_is_not_found_even_for_a_key_restricted_to_others():
    # OpenAI's answer: the model does not exist (400), not "you may not use it" (403)
    error = refused({"model": "gpt-5-imaginary", "messages": MESSAGES}, key(allowed_models=["gpt-4"]))
    assert (error.status, error.code) == (400, "model_not_found")


# --- Every field the gateway reads, prices or forwards, as OpenAI documents it ---------------------------------

USER = {"role": "user", "content": "hi"}
CALL = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
TOOL = {"type": "function", "function": {"name": "lookup", "description": "d", "parameters": {"type": "object"}}}


def chat(**fields) -> dict:
    return {"model": "gpt-4", "messages": [USER], **fields}


def said(*messages) -> dict:
    return chat(messages=list(messages))


ACCEPTED = [
    chat(n=128, max_tokens=1, max_completion_tokens=5, temperature=0, top_p=1, presence_penalty=-2),
    chat(temperature=2, top_p=0.5, frequency_penalty=2, seed=-(2**63), user="u-1", store=True, logprobs=False),
    chat(stop="END", logit_bias={"50256": -100, "11": 100.0}, logprobs=True, top_logprobs=20),
    chat(stop=["a", "b", "c", "d"], metadata={"k": "v"}, parallel_tool_calls=False, service_tier="auto"),
    chat(stream=True, stream_options={"include_usage": True, "include_obfuscation": False}),
    chat(tools=[TOOL], tool_choice="required"),
    chat(tools=[TOOL], tool_choice={"type": "function", "function": {"name": "lookup"}}),
    chat(tools=[{"type": "custom", "custom": {"name": "grep", "format": {"type": "text"}}}], tool_choice="auto"),
    chat(tool_choice={"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [{"type": "function"}]}}),
    chat(functions=[{"name": "f", "parameters": {}}], function_call={"name": "f"}),
    chat(response_format={"type": "json_object"}),
    chat(response_format={"type": "json_schema", "json_schema": {"name": "a-b_1", "schema": {}, "strict": True}}),
    chat(modalities=["text"], service_tier="default"),  # audio output, prediction etc.: test_priced_options
    chat(n=None, temperature=None, tools=None, stop=None, seed=None, user=None),  # null means "not set"
    chat(brand_new_openai_field={"anything": [1, 2]}, reasoning_effort="minimal", verbosity="low"),
    said({"role": "developer", "content": [{"type": "text", "text": "rules"}], "name": "ops"}),
    said({"role": "user", "content": ""}),
    said(
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
                {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "mp3"}},
                {"type": "file", "file": {"file_id": "file-1"}},
            ],
        }
    ),
    said(
        USER,
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
    ),
    said(USER, {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}], "refusal": "no"}),
    said(
        USER,
        {"role": "assistant", "function_call": {"name": "f", "arguments": "{}"}},
        {"role": "function", "name": "f", "content": None},
    ),
    said(
        USER,
        {"role": "assistant", "tool_calls": [{"id": "c", "type": "custom", "custom": {"name": "g", "input": "x"}}]},
    ),
    said(USER, {"role": "assistant", "content": "x", "audio": {"id": "audio_1"}, "prefix": True}),  # extra keys pass
]


@pytest.mark.parametrize("body", ACCEPTED)
def test_bodies_openai_accepts_are_accepted(body):
    assert validate_chat_request(None, key(), body, lookup=Lookup()) is CATALOG["gpt-4"]


REFUSED = [
    # numbers: type and documented range
    (chat(n=1_000_000_000_000), "n"),
    (chat(n=129), "n"),
    (chat(n=1.0), "n"),
    (chat(max_completion_tokens=-1), "max_completion_tokens"),
    (chat(temperature=2.01), "temperature"),
    (chat(temperature=-0.1), "temperature"),
    (chat(temperature="1"), "temperature"),
    (chat(top_p=1.5), "top_p"),
    (chat(presence_penalty=-2.5), "presence_penalty"),
    (chat(frequency_penalty=True), "frequency_penalty"),
    (chat(seed=2**63), "seed"),
    (chat(seed=1.5), "seed"),
    (chat(top_logprobs=21, logprobs=True), "top_logprobs"),
    (chat(top_logprobs=2), "top_logprobs"),  # needs logprobs: true
    (chat(logprobs="yes"), "logprobs"),
    # strings, lists and maps
    (chat(stop=["a", "b", "c", "d", "e"]), "stop"),
    (chat(stop=[1]), "stop"),
    (chat(stop=5), "stop"),
    (chat(logit_bias={"50256": 101}), "logit_bias.50256"),
    (chat(logit_bias={"hello": 1}), "logit_bias.hello"),
    (chat(logit_bias=[1]), "logit_bias"),
    (chat(user=42), "user"),
    (chat(metadata={"k": 1}), "metadata"),
    (chat(metadata={f"k{i}": "v" for i in range(17)}), "metadata"),
    (chat(parallel_tool_calls="true"), "parallel_tool_calls"),
    (chat(store=1), "store"),
    (chat(modalities=["video"]), "modalities[0]"),
    (chat(audio="alloy"), "audio"),
    (chat(prediction={"type": "content"}), "prediction.content"),
    (chat(web_search_options=[]), "web_search_options"),
    # stream_options only with stream
    (chat(stream_options={"include_usage": True}), "stream_options"),
    (chat(stream=False, stream_options={"include_usage": True}), "stream_options"),
    (chat(stream=True, stream_options={"include_usage": "yes"}), "stream_options.include_usage"),
    # response_format
    (chat(response_format="json"), "response_format"),
    (chat(response_format={"type": "xml"}), "response_format.type"),
    (chat(response_format={"type": "json_schema"}), "response_format.json_schema"),
    (chat(response_format={"type": "json_schema", "json_schema": {"name": "a b"}}), "response_format.json_schema.name"),
    (
        chat(response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": []}}),
        "response_format.json_schema.schema",
    ),
    # tools and tool_choice
    (chat(tools={"type": "function"}), "tools"),
    (chat(tools=[TOOL] * 129), "tools"),
    (chat(tools=["lookup"]), "tools[0]"),
    (chat(tools=[{"type": "retrieval"}]), "tools[0].type"),
    (chat(tools=[{"type": "function"}]), "tools[0].function"),
    (chat(tools=[{"type": "function", "function": {"name": "has space"}}]), "tools[0].function.name"),
    (chat(tools=[{"type": "function", "function": {"name": "x" * 65}}]), "tools[0].function.name"),
    (chat(tools=[{"type": "function", "function": {"name": "f", "parameters": "{}"}}]), "tools[0].function.parameters"),
    (chat(tools=[{"type": "function", "function": {"name": "f", "strict": "yes"}}]), "tools[0].function.strict"),
    (chat(tools=[TOOL, {"type": "custom", "custom": {}}]), "tools[1].custom.name"),
    (chat(tool_choice="any"), "tool_choice"),
    (chat(tool_choice={"type": "function"}), "tool_choice.function"),
    (chat(tool_choice={"type": "function", "function": {"name": 1}}), "tool_choice.function.name"),
    (
        chat(tool_choice={"type": "allowed_tools", "allowed_tools": {"mode": "sometimes", "tools": []}}),
        "tool_choice.allowed_tools.mode",
    ),
    (chat(tool_choice={"type": "magic"}), "tool_choice.type"),
    (chat(functions=[{"description": "no name"}]), "functions[0].name"),
    (chat(function_call="required"), "function_call"),
    # messages: per-role content shapes
    (said({"role": "user"}), "messages[0].content"),
    (said({"role": "user", "content": None}), "messages[0].content"),
    (said({"role": "system"}), "messages[0].content"),
    (said({"role": "user", "content": 5}), "messages[0].content"),
    (said({"role": "user", "content": []}), "messages[0].content"),
    (said({"role": "user", "content": {"type": "text", "text": "x"}}), "messages[0].content"),
    (said({"role": "user", "content": ["hi"]}), "messages[0].content[0]"),
    (said({"role": "user", "content": [{"type": "text"}]}), "messages[0].content[0].text"),
    (said({"role": "user", "content": [{"type": "text", "text": 1}]}), "messages[0].content[0].text"),
    (said({"role": "user", "content": [{"type": "video", "video": "x"}]}), "messages[0].content[0]"),
    (said({"role": "user", "content": [{"type": "refusal", "refusal": "x"}]}), "messages[0].content[0]"),
    (
        said({"role": "user", "content": [{"type": "image_url", "image_url": "http://x/a.png"}]}),
        "messages[0].content[0].image_url",
    ),
    (
        said({"role": "user", "content": [{"type": "image_url", "image_url": {"url": ""}}]}),
        "messages[0].content[0].image_url.url",
    ),
    (
        said({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u", "detail": "max"}}]}),
        "messages[0].content[0].image_url.detail",
    ),
    (
        said({"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "A", "format": "ogg"}}]}),
        "messages[0].content[0].input_audio.format",
    ),
    (
        said({"role": "user", "content": [{"type": "file", "file": {"file_id": 7}}]}),
        "messages[0].content[0].file.file_id",
    ),
    (said({"role": "system", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}), "messages[0].content[0]"),
    (said({"role": "user", "content": "x", "name": 5}), "messages[0].name"),
    (said(USER, {"role": "assistant"}), "messages[1].content"),
    (
        said(USER, {"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}),
        "messages[1].content[0]",
    ),
    (said(USER, {"role": "assistant", "content": "x", "refusal": 1}), "messages[1].refusal"),
    (said(USER, {"role": "assistant", "tool_calls": []}), "messages[1].tool_calls"),
    (
        said(USER, {"role": "assistant", "tool_calls": [{"type": "function", "function": CALL["function"]}]}),
        "messages[1].tool_calls[0].id",
    ),
    (said(USER, {"role": "assistant", "tool_calls": [{**CALL, "type": "tool"}]}), "messages[1].tool_calls[0].type"),
    (
        said(USER, {"role": "assistant", "tool_calls": [{**CALL, "function": {"name": "f"}}]}),
        "messages[1].tool_calls[0].function.arguments",
    ),
    (
        said(USER, {"role": "assistant", "tool_calls": [{**CALL, "function": {"name": "a b", "arguments": "{}"}}]}),
        "messages[1].tool_calls[0].function.name",
    ),
    (
        said(USER, {"role": "assistant", "tool_calls": [{**CALL, "function": {"name": "f", "arguments": {}}}]}),
        "messages[1].tool_calls[0].function.arguments",
    ),
    (said(USER, {"role": "assistant", "content": "x", "audio": {}}), "messages[1].audio.id"),
    (said(USER, {"role": "tool", "content": "42"}), "messages[1].tool_call_id"),
    (said(USER, {"role": "tool", "tool_call_id": 1, "content": "42"}), "messages[1].tool_call_id"),
    (said(USER, {"role": "tool", "tool_call_id": "c"}), "messages[1].content"),
    (said(USER, {"role": "function", "content": "x"}), "messages[1].name"),
    (said(USER, {"role": "function", "name": "f"}), "messages[1].content"),
]


@pytest.mark.parametrize("body, param", REFUSED)
def test_each_documented_rule_is_a_400_naming_its_param(body, param):
    lookup = Lookup()
    error = refused(body, lookup=lookup)
    assert (error.status, error.type, error.param) == (400, "invalid_request_error", param), error.message
    assert error.code in ("invalid_request", "missing_field")
    assert lookup.asked == []  # refused before the catalog (or anything else) is asked
