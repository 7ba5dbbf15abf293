"""The one mapping between the Responses API and chat completions (docs/responses.md), both ways, streams too."""

from __future__ import annotations

from llmproxy.billing.cost import Usage
from llmproxy.responses.objects import call_item_id, from_completion, message_id
from llmproxy.responses.stream_events import EventTranslator
from llmproxy.responses.to_chat import HISTORY, to_chat

RID = "resp_0123456789abcdef0123456789abcdef"
TOOL = {"type": "function", "name": "lookup", "description": "Find", "parameters": {"type": "object"}, "strict": True}


def test_a_request_becomes_the_chat_request_that_asks_the_same():
    body = {
        "model": "m",
        "instructions": "Be terse",
        "input": [
            {"role": "developer", "content": "Use metric units"},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is this?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
                ],
            },
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Let me look."}]},
            {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": "{}"},
            {"type": "function_call", "call_id": "c2", "name": "lookup", "arguments": '{"x": 1}'},
            {"type": "function_call_output", "call_id": "c1", "output": "a cat"},
            {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "tabby"}]},
        ],
        "tools": [TOOL],
        "tool_choice": {"type": "function", "name": "lookup"},
        "max_output_tokens": 100,
        "temperature": 0.2,
        "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": True}},
        "reasoning": {"effort": "low"},
        "metadata": {"a": "b"},
        "store": True,
    }

    chat = to_chat(body)

    assert chat["messages"] == [
        {"role": "system", "content": "Be terse"},
        {"role": "developer", "content": "Use metric units"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [  # the calls after an assistant message are that turn's
                {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}},
                {"id": "c2", "type": "function", "function": {"name": "lookup", "arguments": '{"x": 1}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "a cat"},
        {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "tabby"}]},
    ]
    assert chat["tools"] == [
        {"type": "function", "function": {k: v for k, v in TOOL.items() if k != "type"}},
    ]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "lookup"}}
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": True},
    }
    assert (chat["max_tokens"], chat["temperature"], chat["reasoning_effort"]) == (100, 0.2, "low")
    assert not {"input", "instructions", "metadata", "store", "text", "reasoning"} & set(chat)


def test_the_replayed_conversation_comes_first_and_a_lone_call_is_its_own_turn():
    body = {
        "model": "m",
        "input": "and now?",
        HISTORY: [
            {"type": "message", "role": "user", "content": "hi"},
            {"type": "function_call", "call_id": "c9", "name": "f", "arguments": "{}"},
        ],
        "stream": True,
    }
    chat = to_chat(body)
    assert chat["messages"] == [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c9", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "user", "content": "and now?"},
    ]
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}


def test_a_completion_becomes_the_response_with_items_and_usage():
    completion = {
        "choices": [
            {
                "index": 0,
                "finish_reason": "length",
                "message": {
                    "role": "assistant",
                    "content": "partial",
                    "tool_calls": [{"id": "call_7", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
                },
            }
        ]
    }
    usage = Usage(prompt_tokens=10, completion_tokens=5, cached_prompt_tokens=4)

    response = from_completion(
        RID, {"model": "m", "input": "x", "max_output_tokens": 16}, completion, usage, created_at=1700000000, model="m"
    )

    assert response["status"] == "incomplete" and response["incomplete_details"] == {"reason": "max_output_tokens"}
    message, call = response["output"]
    assert message["id"] == message_id(RID) and message["content"][0] == {
        "type": "output_text",
        "text": "partial",
        "annotations": [],
        "logprobs": [],
    }
    assert call == {
        "type": "function_call",
        "id": call_item_id(RID, 0),
        "call_id": "call_7",
        "name": "f",
        "arguments": "{}",
        "status": "incomplete",
    }
    assert response["usage"] == {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 4},
        "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 15,
    }
    assert response["max_output_tokens"] == 16 and response["created_at"] == 1700000000


def chunk(**delta) -> dict:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


def test_chat_chunks_become_numbered_events_and_close_with_the_stored_response():
    translator = EventTranslator.for_request(RID, {"model": "m", "input": "x"}, created_at=1, model="m")
    streamed = []
    for piece in (
        chunk(role="assistant", content="Hel"),
        chunk(content="lo"),
        chunk(tool_calls=[{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": '{"a"'}}]),
        chunk(tool_calls=[{"index": 0, "function": {"arguments": ": 1}"}}]),
    ):
        streamed += translator.add(piece)
    completion = {
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": "Hello",
                    "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
                    ],
                },
            }
        ]
    }
    final = from_completion(RID, {"model": "m", "input": "x"}, completion, Usage(3, 4), created_at=1, model="m")
    streamed += translator.close(final)

    assert [e["sequence_number"] for e in streamed] == list(range(len(streamed)))
    assert [e["type"] for e in streamed] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    added = [e for e in streamed if e["type"] == "response.output_item.added"]
    done = [e for e in streamed if e["type"] == "response.output_item.done"]
    assert [e["item"]["id"] for e in added] == [e["item"]["id"] for e in done] == [i["id"] for i in final["output"]]
    assert [e["output_index"] for e in done] == [0, 1]
    assert streamed[-1]["response"] == final
