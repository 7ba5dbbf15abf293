"""Stream assembly: the chat.completion a stream amounts to, for the job record and billing."""

from llmproxy.chat.stream_assembly import StreamAssembler


def test_stream_assembler_merges_content_tool_calls_and_usage():
    a = StreamAssembler()
    a.add(
        {
            "id": "c1",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}],
        }
    )
    a.add({"id": "c1", "choices": [{"index": 0, "delta": {"content": "lo"}}]})
    a.add(
        {
            "id": "c1",
            "choices": [
                {
                    "index": 1,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "get_", "arguments": '{"ci'},
                            }
                        ]
                    },
                }
            ],
        }
    )
    a.add(
        {
            "id": "c1",
            "choices": [
                {
                    "index": 1,
                    "delta": {
                        "tool_calls": [{"index": 0, "function": {"name": "weather", "arguments": 'ty": "Paris"}'}}]
                    },
                    "finish_reason": "tool_calls",
                }
            ],
        }
    )
    a.add({"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    a.add({"id": "c1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}})
    done = a.completion()
    assert done["object"] == "chat.completion" and done["id"] == "c1"
    assert done["choices"][0]["message"] == {"role": "assistant", "content": "Hello"}
    assert done["choices"][0]["finish_reason"] == "stop"
    call = done["choices"][1]["message"]["tool_calls"][0]
    assert call == {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    assert done["choices"][1]["message"]["content"] is None
    assert done["usage"] == {"prompt_tokens": 3, "completion_tokens": 2}
