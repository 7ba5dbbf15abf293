"""Fallback chains: a model and its fallbacks, as rows or as detached entries a process may cache."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy.orm import Session

from llmproxy.catalog.model_config import find_model
from llmproxy.catalog.snapshots import Snapshots
from llmproxy.keys import crypto
from llmproxy.keys.credentials import deployment_context, provider_context
from llmproxy.keys.crypto import DecryptionError
from llmproxy.storage.models import Deployment, ModelConfig

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
class DeploymentEntry:
    """One enabled deployment of a chain's model: where to call it and with which key (detached, safe to cache)."""

    id: int
    provider: str
    kind: str
    api_base: str  # the deployment's own, else its provider's
    upstream_model: str
    weight: int
    rpm_limit: int | None
    tpm_limit: int | None
    provider_enabled: bool
    key: str | None = field(default=None, repr=False)  # decrypted (its own, else its provider's); never printed


@dataclass(frozen=True)
class ChainEntry:
    """What the worker needs of one model of a chain, detached from any session (safe to cache)."""

    model: str
    input_cost_per_1m: Decimal
    output_cost_per_1m: Decimal
    cached_input_cost_per_1m: Decimal | None
    cache_write_cost_per_1m: Decimal | None
    mode: str = "chat"  # what the model does: "chat" or "embedding"
    deployments: tuple[DeploymentEntry, ...] = ()  # enabled ones, by id (the first is the model's own provider)

    @property
    def enabled(self) -> bool:
        """Chains hold enabled models only."""
        return True


def _decrypted(sealed: str | None, *, encryption_key: bytes | None, context: str, owner: str) -> str | None:
    """A stored key, decrypted; None without a key, without an encryption key, or when it cannot be decrypted."""
    if not sealed or encryption_key is None:
        return None
    try:
        return crypto.decrypt(sealed, key=encryption_key, context=context)
    except DecryptionError:
        log.error("stored key of %s cannot be decrypted", owner)
        return None


def _deployment_entry(deployment: Deployment, *, encryption_key: bytes | None) -> DeploymentEntry:
    provider = deployment.provider
    key = _decrypted(
        deployment.api_key_enc,
        encryption_key=encryption_key,
        context=deployment_context(deployment.id),
        owner=f"deployment {deployment.id}",
    )
    if key is None and not deployment.api_key_enc:
        key = _decrypted(
            provider.api_key_enc,
            encryption_key=encryption_key,
            context=provider_context(provider.name),
            owner=f"provider {provider.name}",
        )
    return DeploymentEntry(
        id=deployment.id,
        provider=provider.name,
        kind=provider.kind,
        api_base=deployment.api_base or provider.api_base,
        upstream_model=deployment.upstream_model,
        weight=deployment.weight,
        rpm_limit=deployment.rpm_limit,
        tpm_limit=deployment.tpm_limit,
        provider_enabled=provider.enabled,
        key=key,
    )


def load_chain(session: Session, name: str, *, encryption_key: bytes | None) -> list[ChainEntry]:
    """The model's fallback chain as detached entries; with an encryption key, deployments' keys decrypted."""
    return [
        ChainEntry(
            model=model.name,
            input_cost_per_1m=model.input_cost_per_1m,
            output_cost_per_1m=model.output_cost_per_1m,
            cached_input_cost_per_1m=model.cached_input_cost_per_1m,
            cache_write_cost_per_1m=model.cache_write_cost_per_1m,
            mode=model.mode,
            deployments=tuple(
                _deployment_entry(d, encryption_key=encryption_key) for d in model.deployments if d.enabled
            ),
        )
        for model in fallback_chain(session, name)
    ]


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
