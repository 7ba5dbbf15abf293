"""The default providers and models that `setup` and `db seed` insert when missing."""

from __future__ import annotations

from decimal import Decimal
from typing import NotRequired, TypedDict

from sqlalchemy import select
from sqlalchemy.orm import Session

from llmproxy.catalog.model_config import find_model
from llmproxy.storage.models import Deployment, ModelConfig, Provider


class ProviderSpec(TypedDict):
    """A default provider's columns."""

    name: str
    kind: str
    api_base: str


class ModelSpec(TypedDict):
    """A default model: its provider by name, prices per 1M tokens as decimal strings."""

    name: str
    provider: str
    mode: NotRequired[str]  # "chat" unless said
    fallbacks: NotRequired[list[str]]
    input_cost_per_1m: str
    output_cost_per_1m: str
    cached_input_cost_per_1m: NotRequired[str]
    cache_write_cost_per_1m: NotRequired[str]
    context_window: int


DEFAULT_PROVIDERS: list[ProviderSpec] = [
    {"name": "openai", "kind": "openai", "api_base": "https://api.openai.com/v1"},
    {"name": "mistral", "kind": "mistral", "api_base": "https://api.mistral.ai/v1"},
    # The base is the URL before /v1/messages; its key comes from ANTHROPIC_API_KEY or the admin API.
    {"name": "anthropic", "kind": "anthropic", "api_base": "https://api.anthropic.com"},
]

# The original proxy's seeded models; its per-1K prices × 1000 = per 1M.
DEFAULT_MODELS: list[ModelSpec] = [
    {
        "name": "gpt-3.5-turbo",
        "provider": "openai",
        "fallbacks": ["mistral-tiny"],
        "input_cost_per_1m": "1.5",
        "output_cost_per_1m": "2",
        "context_window": 16385,
    },
    {
        "name": "gpt-4",
        "provider": "openai",
        "fallbacks": ["mistral-large"],
        "input_cost_per_1m": "30",
        "output_cost_per_1m": "60",
        "context_window": 8192,
    },
    {
        "name": "mistral-tiny",
        "provider": "mistral",
        "input_cost_per_1m": "0.15",
        "output_cost_per_1m": "0.75",
        "context_window": 32000,
    },
    {
        "name": "mistral-small",
        "provider": "mistral",
        "input_cost_per_1m": "0.6",
        "output_cost_per_1m": "1.8",
        "context_window": 32000,
    },
    {
        "name": "mistral-medium",
        "provider": "mistral",
        "input_cost_per_1m": "2.7",
        "output_cost_per_1m": "8.1",
        "context_window": 32000,
    },
    {
        "name": "mistral-large",
        "provider": "mistral",
        "input_cost_per_1m": "8",
        "output_cost_per_1m": "24",
        "context_window": 32000,
    },
    # Anthropic's list prices: cache reads 0.1× input, 5-minute cache writes 1.25× input.
    {
        "name": "claude-sonnet-4-5",
        "provider": "anthropic",
        "input_cost_per_1m": "3",
        "output_cost_per_1m": "15",
        "cached_input_cost_per_1m": "0.3",
        "cache_write_cost_per_1m": "3.75",
        "context_window": 200000,
    },
    {
        "name": "claude-haiku-4-5",
        "provider": "anthropic",
        "input_cost_per_1m": "1",
        "output_cost_per_1m": "5",
        "cached_input_cost_per_1m": "0.1",
        "cache_write_cost_per_1m": "1.25",
        "context_window": 200000,
    },
    # Embedding models: input is all they bill.
    {
        "name": "text-embedding-3-small",
        "provider": "openai",
        "mode": "embedding",
        "input_cost_per_1m": "0.02",
        "output_cost_per_1m": "0",
        "context_window": 8191,
    },
    {
        "name": "text-embedding-3-large",
        "provider": "openai",
        "mode": "embedding",
        "input_cost_per_1m": "0.13",
        "output_cost_per_1m": "0",
        "context_window": 8191,
    },
    {
        "name": "mistral-embed",
        "provider": "mistral",
        "mode": "embedding",
        "input_cost_per_1m": "0.1",
        "output_cost_per_1m": "0",
        "context_window": 8192,
    },
]


def seed_defaults(session: Session) -> int:
    """Insert the default providers and models that are missing; return how many rows were added."""
    added = 0
    for provider_spec in DEFAULT_PROVIDERS:
        if session.scalar(select(Provider.id).where(Provider.name == provider_spec["name"])) is None:
            session.add(Provider(enabled=True, **provider_spec))
            added += 1
    session.flush()
    for spec in DEFAULT_MODELS:
        if find_model(session, spec["name"]) is None:
            # One row: the loop above inserted every default provider that was missing.
            provider = session.scalars(select(Provider).where(Provider.name == spec["provider"])).one()
            session.add(
                ModelConfig(
                    name=spec["name"],
                    mode=spec.get("mode", "chat"),
                    deployments=[
                        Deployment(provider_id=provider.id, upstream_model=spec["name"], weight=1, enabled=True)
                    ],
                    fallbacks=spec.get("fallbacks", []),
                    enabled=True,
                    input_cost_per_1m=Decimal(spec["input_cost_per_1m"]),
                    output_cost_per_1m=Decimal(spec["output_cost_per_1m"]),
                    cached_input_cost_per_1m=_price(spec.get("cached_input_cost_per_1m")),
                    cache_write_cost_per_1m=_price(spec.get("cache_write_cost_per_1m")),
                    context_window=spec["context_window"],
                )
            )
            added += 1
    session.flush()
    return added


def _price(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)
