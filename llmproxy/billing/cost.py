"""Cost from usage and prices, in exact Decimals rounded once to storage precision; usage in OpenAI's shape."""

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


@dataclass(frozen=True)
class Usage:
    """Token counts of one request; `estimated` when we counted because the provider reported none."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    estimated: bool = False

    def as_openai(self) -> JSON:
        """OpenAI's usage object."""
        usage: JSON = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }
        if self.cached_prompt_tokens:
            usage["prompt_tokens_details"] = {"cached_tokens": self.cached_prompt_tokens}
        return usage


def usage_from_openai(usage: object) -> Usage | None:
    """Read OpenAI's (or a compatible provider's) usage object; None if it is missing or unusable."""
    if not isinstance(usage, dict):
        return None
    try:
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        details = usage.get("prompt_tokens_details") or {}
        cached = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
    except (TypeError, ValueError):
        return None
    if "prompt_tokens" not in usage and "completion_tokens" not in usage:
        return None
    return Usage(prompt, completion, min(cached, prompt))


def compute_cost(usage: Usage, prices: Prices) -> Decimal:
    """Cost in USD: uncached prompt × input + cached prompt × cached-input (else input) + completion × output."""
    cached_price = prices.cached_input_per_1m if prices.cached_input_per_1m is not None else prices.input_per_1m
    uncached = usage.prompt_tokens - usage.cached_prompt_tokens
    total = (
        Decimal(uncached) * prices.input_per_1m
        + Decimal(usage.cached_prompt_tokens) * cached_price
        + Decimal(usage.completion_tokens) * prices.output_per_1m
    ) / ONE_MILLION
    return total.quantize(MONEY_QUANTUM, rounding=ROUND_HALF_EVEN)
