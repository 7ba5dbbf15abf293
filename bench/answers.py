"""Is it a chat completion? One sync and one streamed request that every peer must answer like OpenAI."""

from __future__ import annotations

import json

import requests

from bench.loadgen import TIMEOUTS, request_body
from bench.processes import BenchError


def check_answers(base_url: str, api_key: str) -> None:
    """One sync and one streamed request with the load generator's bodies must be well-formed chat completions."""
    url = base_url.rstrip("/") + "/chat/completions"
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    resp = requests.post(url, data=request_body(stream=False), headers=headers, timeout=TIMEOUTS)
    problem = completion_problem(resp.status_code, resp.text)
    if problem is None:
        with requests.post(
            url, data=request_body(stream=True), headers=headers, timeout=TIMEOUTS, stream=True
        ) as streamed:
            problem = stream_problem(streamed.status_code, streamed.text)
    if problem:
        raise BenchError(f"{base_url} does not answer like OpenAI: {problem}")


def completion_problem(status: int, text: str) -> str | None:
    """What is wrong with a non-streamed chat completion response, or None when it is valid."""
    if status != 200:
        return f"sync HTTP {status}: {text[:300]}"
    try:
        body = json.loads(text)
    except ValueError:
        return f"sync body is not JSON: {text[:300]}"
    choices = body.get("choices") if isinstance(body, dict) else None
    if body.get("object") != "chat.completion" or not choices:
        return f"sync body is not a chat.completion with choices: {text[:300]}"
    message = choices[0].get("message") or {}
    if message.get("role") != "assistant" or not message.get("content"):
        return f"sync answer has no assistant content: {text[:300]}"
    return None


def stream_problem(status: int, text: str) -> str | None:
    """What is wrong with a streamed (SSE) chat completion, or None when it is valid."""
    if status != 200:
        return f"stream HTTP {status}: {text[:300]}"
    payloads = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
    if not payloads or payloads[-1] != "[DONE]":
        return f"stream does not end with data: [DONE]: {text[-300:]}"
    content = ""
    for payload in payloads[:-1]:
        try:
            chunk = json.loads(payload)
        except ValueError:
            return f"stream chunk is not JSON: {payload[:300]}"
        if chunk.get("object") != "chat.completion.chunk":
            return f"stream chunk is not a chat.completion.chunk: {payload[:300]}"
        content += "".join((c.get("delta") or {}).get("content") or "" for c in chunk.get("choices") or ())
    if not content:
        return "stream carried no content"
    return None
