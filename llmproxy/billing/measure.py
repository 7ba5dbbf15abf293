"""The usage of a completed request: the provider's own report, else our count (marked estimated)."""

from __future__ import annotations

from llmproxy.billing.cost import Usage, usage_from_openai
from llmproxy.jsontypes import JSON


def measure_usage(response: JSON, request: JSON, model: str, operation: str = "chat") -> Usage:
    """The provider's reported usage, else our own count of everything it would bill (marked estimated)."""
    reported = usage_from_openai(response.get("usage"))
    if reported is not None:
        return reported
    if operation == "embeddings":
        from llmproxy.embeddings.tokens import count_input_tokens

        return Usage(prompt_tokens=count_input_tokens(request.get("input"), model), estimated=True)
    from llmproxy.chat.tokens import count_completion_tokens, count_request_prompt_tokens

    # Everything the provider would charge: the prompt with its tool definitions and schema, and every
    # choice's text, refusal, reasoning and tool-call arguments (a cut stream's too, as assembled).
    return Usage(
        prompt_tokens=count_request_prompt_tokens(request, model),
        completion_tokens=count_completion_tokens(response.get("choices") or [], model),
        estimated=True,
    )
