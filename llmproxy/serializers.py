"""The JSON shapes of admin objects, shared by the HTTP API and the CLI."""
from __future__ import annotations

from decimal import Decimal

from llmproxy.db import to_epoch
from llmproxy.models import ApiKey, ModelConfig, Provider


def money(value: Decimal | None) -> str | None:
    """Money as a decimal string without trailing zeros (JSON numbers would round)."""
    if value is None:
        return None
    text = format(value.normalize(), "f")
    return text


def key_json(key: ApiKey) -> dict:
    """A virtual key as the admin API shows it (never the secret)."""
    return {
        "id": key.id, "object": "api_key", "name": key.name, "prefix": key.prefix,
        "rpm_limit": key.rpm_limit, "tpm_limit": key.tpm_limit,
        "budget_usd": money(key.budget_usd), "spend_usd": money(key.spend_usd),
        "models": key.allowed_models, "created_at": to_epoch(key.created_at),
        "revoked_at": to_epoch(key.revoked_at), "active": key.revoked_at is None,
    }


def provider_json(provider: Provider) -> dict:
    """A provider; whether a key is configured, never the key."""
    return {
        "name": provider.name, "object": "provider", "kind": provider.kind, "api_base": provider.api_base,
        "has_api_key": bool(provider.api_key_enc), "enabled": provider.enabled,
        "created_at": to_epoch(provider.created_at), "updated_at": to_epoch(provider.updated_at),
    }


def model_json(model: ModelConfig) -> dict:
    """A model with its provider, prices (decimal strings per 1M tokens) and fallbacks."""
    return {
        "name": model.name, "object": "model_config", "provider": model.provider.name,
        "upstream_model": model.upstream_model, "fallbacks": list(model.fallbacks or []),
        "input_cost_per_1m": money(model.input_cost_per_1m), "output_cost_per_1m": money(model.output_cost_per_1m),
        "cached_input_cost_per_1m": money(model.cached_input_cost_per_1m),
        "context_window": model.context_window, "enabled": model.enabled,
        "created_at": to_epoch(model.created_at), "updated_at": to_epoch(model.updated_at),
    }
