"""Execute one job end to end: claim it, run its chain, bill it once, hand the result to the waiter."""

from __future__ import annotations

from llmproxy.billing.cost import Usage, usage_from_openai


def measure_usage(response: dict, request: dict, model: str) -> Usage:
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
