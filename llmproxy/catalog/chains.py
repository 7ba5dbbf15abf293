"""Fallback chains: a model and its fallbacks, as rows or as detached entries a process may cache."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy.orm import Session

from llmproxy.catalog.model_config import find_model
from llmproxy.catalog.provider_config import provider_default_key
from llmproxy.catalog.snapshots import Snapshots
from llmproxy.keys.crypto import DecryptionError
from llmproxy.storage.models import ModelConfig

log = logging.getLogger(__name__)


def fallback_chain(session: Session, name: str) -> list[ModelConfig]:
    """The model, then its fallbacks in order (depth-first, each model once), enabled ones only."""
    chain: list[ModelConfig] = []
    seen: set[str] = set()

    def add(model_name: str) -> None:
        if model_name in seen:
            return
        seen.add(model_name)
        model = find_model(session, model_name)
        if model is None:
            return
        if model.enabled:
            chain.append(model)
        for fb in model.fallbacks or []:
            add(fb)

    add(name)
    return chain


@dataclass(frozen=True)
class ChainEntry:
    """What the worker needs of one model of a chain, detached from any session (safe to cache)."""

    model: str
    upstream_model: str
    provider: str
    kind: str
    api_base: str
    provider_enabled: bool
    input_cost_per_1m: Decimal
    output_cost_per_1m: Decimal
    cached_input_cost_per_1m: Decimal | None
    cache_write_cost_per_1m: Decimal | None
    mode: str = "chat"  # what the model does: "chat" or "embedding"
    provider_key: str | None = field(default=None, repr=False)  # decrypted; never printed

    @property
    def enabled(self) -> bool:
        """Chains hold enabled models only."""
        return True


def load_chain(session: Session, name: str, *, encryption_key: bytes | None) -> list[ChainEntry]:
    """The model's fallback chain as detached entries; with an encryption key, providers' keys decrypted."""
    entries: list[ChainEntry] = []
    for model in fallback_chain(session, name):
        provider = model.provider
        try:
            key = provider_default_key(provider, encryption_key=encryption_key) if encryption_key else None
        except DecryptionError:
            log.error("stored key of provider %s cannot be decrypted", provider.name)
            key = None
        entries.append(
            ChainEntry(
                model=model.name,
                upstream_model=model.upstream_model,
                provider=provider.name,
                kind=provider.kind,
                api_base=provider.api_base,
                provider_enabled=provider.enabled,
                input_cost_per_1m=model.input_cost_per_1m,
                output_cost_per_1m=model.output_cost_per_1m,
                cached_input_cost_per_1m=model.cached_input_cost_per_1m,
                cache_write_cost_per_1m=model.cache_write_cost_per_1m,
                mode=model.mode,
                provider_key=key,
            )
        )
    return entries


def cached_price_chain(snapshots: Snapshots, session: Session, name: str) -> list[ChainEntry]:
    """The model's chain without provider keys, from the process's snapshots ([] for an unknown or disabled model).

    What admission and validation need (names and prices): the web never holds a provider's key.
    """
    return snapshots.get(("prices", name), lambda: load_chain(session, name, encryption_key=None))


def allowed_chain(chain: list[ChainEntry], allowed_models: list[str] | None) -> list[ChainEntry]:
    """The chain as a key restricted to `allowed_models` (None: all) may use it: the other models left out."""
    if allowed_models is None:
        return chain
    return [entry for entry in chain if entry.model in allowed_models]
