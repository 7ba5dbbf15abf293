"""The usage of a completed request: the provider's own report, else our count (marked estimated)."""

from __future__ import annotations

from llmproxy.billing.cost import Usage, usage_from_openai
from llmproxy.jsontypes import JSON


def measure_usage(response: JSON, request: JSON, model: str) -> Usage:
    """The provider's reported usage, else our own count (marked estimated)."""
    reported = usage_from_openai(response.get("usage"))
    if reported is not None:
        return reported
    from llmproxy.chat.tokens import count_prompt_tokens, count_text_tokens

    completion_text = "".join((c.get("message") or {}).get("content") or "" for c in response.get("choices") or [])
    return Usage(
        prompt_tokens=count_prompt_tokens(request.get("messages") or [], model),
        completion_tokens=count_text_tokens(completion_text, model),
        estimated=True,
    )
