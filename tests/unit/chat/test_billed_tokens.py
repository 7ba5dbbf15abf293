"""What an estimate counts: everything a provider bills, prompt and completion (the `usage.estimated` path)."""

from __future__ import annotations

import json

from llmproxy.billing.measure import measure_usage
from llmproxy.chat import tokens
from llmproxy.chat.stream_assembly import StreamAssembler

MODEL = "gpt-4"
MESSAGES = [{"role": "user", "content": "what is the weather in Paris?"}]
TOOLS = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
SCHEMA = {"name": "answer", "schema": {"type": "object", "properties": {"city": {"type": "string"}}}}


def text(value) -> int:
    return tokens.count_text_tokens(
        value if isinstance(value, str) else json.dumps(value, separators=(",", ":")), MODEL
    )


def test_the_prompt_counts_tool_definitions_and_a_response_schema():
    plain = tokens.count_prompt_tokens(MESSAGES, MODEL)
    body = {"model": MODEL, "messages": MESSAGES, "tools": TOOLS}
    assert tokens.count_request_prompt_tokens(body, MODEL) == plain + text(TOOLS)
    body["response_format"] = {"type": "json_schema", "json_schema": SCHEMA}
    assert tokens.count_request_prompt_tokens(body, MODEL) == plain + text(TOOLS) + text(SCHEMA)
    body["response_format"] = {"type": "json_object"}  # no schema sent to the model
    assert tokens.count_request_prompt_tokens(body, MODEL) == plain + text(TOOLS)
    legacy = {"model": MODEL, "messages": MESSAGES, "functions": [TOOLS[0]["function"]]}
    assert tokens.count_request_prompt_tokens(legacy, MODEL) == plain + text([TOOLS[0]["function"]])


def test_the_estimate_the_budget_reserves_counts_the_same_prompt():
    body = {"model": MODEL, "messages": MESSAGES, "tools": TOOLS, "max_tokens": 5}
    assert tokens.estimate_request(body, default_max_tokens=100) == (tokens.count_request_prompt_tokens(body, MODEL), 5)


def test_the_completion_counts_text_refusal_reasoning_and_every_call():
    args = '{"city": "Paris", "unit": "celsius"}'
    choices = [
        {"message": {"role": "assistant", "content": "It is sunny.", "reasoning_content": "Let me think."}},
        {"message": {"role": "assistant", "content": None, "refusal": "I cannot help with that."}},
        {
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c", "type": "function", "function": {"name": "weather", "arguments": args}}],
            }
        },
        {"message": {"role": "assistant", "content": None, "function_call": {"name": "weather", "arguments": args}}},
        {"message": {"role": "assistant", "content": "", "reasoning": "Hmm."}},
    ]
    expected = (
        text("It is sunny.")
        + text("Let me think.")
        + text("I cannot help with that.")
        + 2 * (text("weather") + text(args))
        + text("Hmm.")
    )
    assert tokens.count_completion_tokens(choices, MODEL) == expected


def test_a_cut_stream_with_a_tool_call_is_billed_for_its_arguments():
    assembler = StreamAssembler()
    head = {"index": 0, "id": "call_0", "type": "function", "function": {"name": "weather", "arguments": ""}}
    assembler.add({"id": "s", "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [head]}}]})
    for piece in ('{"city": ', '"Paris", ', '"unit": "celsius"'):  # cut before the closing brace
        part = {"index": 0, "function": {"arguments": piece}}
        assembler.add({"id": "s", "choices": [{"index": 0, "delta": {"tool_calls": [part]}}]})
    request = {"model": MODEL, "messages": MESSAGES, "tools": TOOLS}
    usage = measure_usage(assembler.completion(), request, MODEL)
    assert usage.estimated
    assert usage.completion_tokens == text("weather") + text('{"city": "Paris", "unit": "celsius"') > 10
    assert usage.prompt_tokens == tokens.count_request_prompt_tokens(request, MODEL)


def test_the_stream_assembler_keeps_refusal_reasoning_and_a_legacy_function_call():
    assembler = StreamAssembler()
    for delta in (
        {"role": "assistant", "reasoning_content": "Think"},
        {"reasoning_content": "ing."},
        {"refusal": "No"},
        {"refusal": "pe."},
        {"function_call": {"name": "weather", "arguments": '{"ci'}},
        {"function_call": {"arguments": 'ty": 1}'}},
    ):
        assembler.add({"id": "s", "choices": [{"index": 0, "delta": delta}]})
    message = assembler.completion()["choices"][0]["message"]
    assert message == {
        "role": "assistant",
        "content": None,
        "reasoning_content": "Thinking.",
        "refusal": "Nope.",
        "function_call": {"name": "weather", "arguments": '{"city": 1}'},
    }
