"""Cost from usage and prices, in exact Decimals rounded once to storage precision; usage in OpenAI's shape.

Prompt tokens split three ways: cache reads (`prompt_tokens_details.cached_tokens`, OpenAI's field),
cache writes (`prompt_tokens_details.cache_write_tokens`, ours: Anthropic bills creating a cache entry
above the input price) and the rest. Both parts are included in `prompt_tokens`, as OpenAI counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from llmproxy.jsontypes import JSON
from llmproxy.storage.money import MONEY_QUANTUM

ONE_MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class Prices:
    """Prices per 1M tokens of the model that served a request."""

    input_per_1m: Decimal
    output_per_1m: Decimal
    cached_input_per_1m: Decimal | None = None
    cache_write_per_1m: Decimal | None = None


@dataclass(frozen=True)
class Usage:
    """Token counts of one request; `estimated` when we counted because the provider reported none."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    estimated: bool = False
    cache_write_tokens: int = 0  # prompt tokens written to the provider's cache (Anthropic's cache creation)

    def as_openai(self) -> JSON:
        """OpenAI's usage object."""
        usage: JSON = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }
        if self.cached_prompt_tokens or self.cache_write_tokens:
            details: JSON = {"cached_tokens": self.cached_prompt_tokens}
            if self.cache_write_tokens:
                details["cache_write_tokens"] = self.cache_write_tokens
            usage["prompt_tokens_details"] = details
        return usage

    def as_openai_embeddings(self) -> JSON:
        """OpenAI's usage object of an embeddings response (nothing is generated)."""
        return {"prompt_tokens": self.prompt_tokens, "total_tokens": self.prompt_tokens + self.completion_tokens}


def usage_from_openai(usage: object) -> Usage | None:
    """Read OpenAI's (or a compatible provider's) usage object; None if it is missing or unusable."""
    if not isinstance(usage, dict):
        return None
    try:
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        details = usage.get("prompt_tokens_details") or {}
        details = details if isinstance(details, dict) else {}
        cached = int(details.get("cached_tokens") or 0)
        writes = int(details.get("cache_write_tokens") or 0)
    except (TypeError, ValueError):
        return None
    if "prompt_tokens" not in usage and "completion_tokens" not in usage:
        return None
    cached = max(0, min(cached, prompt))
    # A malformed report never bills more prompt tokens than it claims in all.
    return Usage(prompt, completion, cached, cache_write_tokens=max(0, min(writes, prompt - cached)))


def compute_cost(usage: Usage, prices: Prices) -> Decimal:
    """Cost in USD: uncached prompt × input + cache reads × cached-input + cache writes × cache-write
    + completion × output; a missing cached-input or cache-write price is the input price.
    """
    cached_price = prices.cached_input_per_1m if prices.cached_input_per_1m is not None else prices.input_per_1m
    write_price = prices.cache_write_per_1m if prices.cache_write_per_1m is not None else prices.input_per_1m
    uncached = usage.prompt_tokens - usage.cached_prompt_tokens - usage.cache_write_tokens
    total = (
        Decimal(uncached) * prices.input_per_1m
        + Decimal(usage.cached_prompt_tokens) * cached_price
        + Decimal(usage.cache_write_tokens) * write_price
        + Decimal(usage.completion_tokens) * prices.output_per_1m
    ) / ONE_MILLION
    return total.quantize(MONEY_QUANTUM, rounding=ROUND_HALF_EVEN)
