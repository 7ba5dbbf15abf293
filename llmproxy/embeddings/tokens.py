"""Counting an embedding request's input tokens: what the provider bills, and what admission reserves."""

from __future__ import annotations

from typing import Any

from llmproxy.chat.tokens import count_text_tokens
from llmproxy.jsontypes import JSON


def count_input_tokens(value: Any, model: str) -> int:
    """Tokens of an `input`: texts counted with the model's encoding, token arrays by their length."""
    if isinstance(value, str):
        return count_text_tokens(value, model)
    if not isinstance(value, list):
        return 0
    if all(isinstance(item, int) for item in value):
        return len(value)  # one token array
    return sum(count_input_tokens(item, model) for item in value)


def estimate_embedding(body: JSON) -> tuple[int, int]:
    """(prompt tokens, completion tokens) of an embedding request: its input, and nothing generated."""
    return count_input_tokens(body.get("input"), str(body.get("model") or "")), 0
