"""Any OpenAI-compatible server (kind "openai_compatible"): vLLM, Ollama, Together, Groq, ...

Same protocol as OpenAI. Differences handled here or in the shared code:
- the API key is optional (local servers often run without auth: no Authorization header);
- responses missing `id`, `object`, `created`, `model` get them filled in, and a missing
  `usage` becomes `usage: None` so routing knows to count tokens itself (shared with openai);
- the output cap the gateway adds to a request without one is sent as `max_tokens`, the field
  these servers share (OpenAI's own `max_completion_tokens` is not known to all of them).
"""

from __future__ import annotations

from llmproxy.providers.openai import OpenAIProvider
from llmproxy.providers.registry import register


@register("openai_compatible")
class OpenAICompatibleProvider(OpenAIProvider):
    """OpenAI's protocol against a self-hosted or third-party server; key optional."""

    responds = False  # only OpenAI itself is sure to have /responses: the chat translation is used

    requires_api_key = False
    output_cap_field = "max_tokens"  # what vLLM, Ollama, llama.cpp and the hosted ones all honour
