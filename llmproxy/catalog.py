"""Providers, models, prices and fallback chains: validated changes and lookups."""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from llmproxy import crypto, validation as v
from llmproxy.errors import ApiError, bad_request, not_found
from llmproxy.models import ModelConfig, Provider

PROVIDER_KINDS = ("openai", "mistral", "openai_compatible")

DEFAULT_PROVIDERS = [
    {"name": "openai", "kind": "openai", "api_base": "https://api.openai.com/v1"},
    {"name": "mistral", "kind": "mistral", "api_base": "https://api.mistral.ai/v1"},
]

# The original proxy's seeded models; its per-1K prices × 1000 = per 1M.
DEFAULT_MODELS = [
    {"name": "gpt-3.5-turbo", "provider": "openai", "fallbacks": ["mistral-tiny"],
     "input_cost_per_1m": "1.5", "output_cost_per_1m": "2", "context_window": 16385},
    {"name": "gpt-4", "provider": "openai", "fallbacks": ["mistral-large"],
     "input_cost_per_1m": "30", "output_cost_per_1m": "60", "context_window": 8192},
    {"name": "mistral-tiny", "provider": "mistral", "input_cost_per_1m": "0.15", "output_cost_per_1m": "0.75",
     "context_window": 32000},
    {"name": "mistral-small", "provider": "mistral", "input_cost_per_1m": "0.6", "output_cost_per_1m": "1.8",
     "context_window": 32000},
    {"name": "mistral-medium", "provider": "mistral", "input_cost_per_1m": "2.7", "output_cost_per_1m": "8.1",
     "context_window": 32000},
    {"name": "mistral-large", "provider": "mistral", "input_cost_per_1m": "8", "output_cost_per_1m": "24",
     "context_window": 32000},
]

PROVIDER_FIELDS = {"name", "kind", "api_base", "api_key", "enabled"}
MODEL_FIELDS = {"name", "provider", "upstream_model", "fallbacks", "input_cost_per_1m", "output_cost_per_1m",
                "cached_input_cost_per_1m", "context_window", "enabled"}


def provider_context(name: str) -> str:
    """Associated data binding a provider's stored key to its row."""
    return f"provider:{name}"


# --- providers -----------------------------------------------------------------------------

def get_provider(session: Session, name: str) -> Provider:
    """The provider with this name, or 404."""
    provider = session.scalar(select(Provider).where(Provider.name == name))
    if provider is None:
        raise not_found("provider")
    return provider


def list_providers(session: Session) -> list[Provider]:
    """All providers by name."""
    return list(session.scalars(select(Provider).order_by(Provider.name)))


def _apply_provider_fields(provider: Provider, data: dict, *, encryption_key: bytes) -> None:
    kind = v.string(data, "kind")
    if kind is not None:
        if kind not in PROVIDER_KINDS:
            raise bad_request(f"'kind' must be one of {', '.join(PROVIDER_KINDS)}", param="kind")
        provider.kind = kind
    api_base = v.string(data, "api_base", max_len=512)
    if api_base is not None:
        if not api_base.startswith(("http://", "https://")):
            raise bad_request("'api_base' must be an http(s) URL", param="api_base")
        provider.api_base = api_base.rstrip("/")
    if "api_key" in data:
        secret = data["api_key"]
        if secret is not None and not isinstance(secret, str):
            raise bad_request("'api_key' must be a string or null", param="api_key")
        provider.api_key_enc = (
            crypto.encrypt(secret, key=encryption_key, context=provider_context(provider.name)) if secret else None
        )
    enabled = v.optional_bool(data, "enabled")
    if enabled is not None:
        provider.enabled = enabled


def create_provider(session: Session, data: dict, *, encryption_key: bytes) -> Provider:
    """Add a provider; 400 on bad input or a name in use."""
    v.reject_unknown(data, PROVIDER_FIELDS)
    name = v.string(data, "name", required=True, max_len=64)
    v.string(data, "kind", required=True)
    v.string(data, "api_base", required=True)
    if session.scalar(select(Provider.id).where(Provider.name == name)) is not None:
        raise bad_request(f"Provider '{name}' already exists", code="already_exists", param="name")
    provider = Provider(name=name, enabled=True)
    _apply_provider_fields(provider, data, encryption_key=encryption_key)
    session.add(provider)
    session.flush()
    return provider


def update_provider(session: Session, name: str, data: dict, *, encryption_key: bytes) -> Provider:
    """Change a provider's fields (name is fixed)."""
    v.reject_unknown(data, PROVIDER_FIELDS - {"name"})
    provider = get_provider(session, name)
    _apply_provider_fields(provider, data, encryption_key=encryption_key)
    session.flush()
    return provider


def delete_provider(session: Session, name: str) -> None:
    """Remove a provider that no model uses."""
    provider = get_provider(session, name)
    users = session.scalars(select(ModelConfig.name).where(ModelConfig.provider_id == provider.id)).all()
    if users:
        raise ApiError(409, f"Provider '{name}' is used by models: {', '.join(users)}", code="in_use")
    session.delete(provider)


def provider_default_key(provider: Provider, *, encryption_key: bytes) -> str | None:
    """The provider's configured key, decrypted, or None."""
    if not provider.api_key_enc:
        return None
    return crypto.decrypt(provider.api_key_enc, key=encryption_key, context=provider_context(provider.name))


# --- models --------------------------------------------------------------------------------

def get_model(session: Session, name: str) -> ModelConfig:
    """The model with this name, or 404."""
    model = session.scalar(select(ModelConfig).where(ModelConfig.name == name))
    if model is None:
        raise not_found("model")
    return model


def find_model(session: Session, name: str) -> ModelConfig | None:
    """The model with this name, or None."""
    return session.scalar(select(ModelConfig).where(ModelConfig.name == name))


def list_models(session: Session) -> list[ModelConfig]:
    """All models by name."""
    return list(session.scalars(select(ModelConfig).order_by(ModelConfig.name)))


def _check_no_loop(session: Session, name: str, fallbacks: list[str]) -> None:
    graph = {m.name: list(m.fallbacks or []) for m in list_models(session)}
    graph[name] = fallbacks
    for fb in fallbacks:
        if fb not in graph:
            raise bad_request(f"Fallback model '{fb}' does not exist", code="model_not_found", param="fallbacks")

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            loop = " -> ".join(path[path.index(node):] + [node])
            raise bad_request(f"Fallback chain loops: {loop}", code="fallback_loop", param="fallbacks")
        for nxt in graph.get(node, []):
            visit(nxt, path + [node])

    visit(name, [])


def _apply_model_fields(session: Session, model: ModelConfig, data: dict) -> None:
    provider_name = v.string(data, "provider", max_len=64)
    if provider_name is not None:
        provider = session.scalar(select(Provider).where(Provider.name == provider_name))
        if provider is None:
            raise bad_request(f"Unknown provider '{provider_name}'", code="provider_not_found", param="provider")
        model.provider = provider
        model.provider_id = provider.id
    upstream = v.string(data, "upstream_model", max_len=128)
    if upstream is not None:
        model.upstream_model = upstream
    for price in ("input_cost_per_1m", "output_cost_per_1m", "cached_input_cost_per_1m"):
        if price in data:
            value = v.optional_decimal(data, price)
            if value is None and price != "cached_input_cost_per_1m":
                raise bad_request(f"'{price}' must be a non-negative number", param=price)
            setattr(model, price, value)
    if "context_window" in data:
        model.context_window = v.optional_int(data, "context_window", minimum=1)
    enabled = v.optional_bool(data, "enabled")
    if enabled is not None:
        model.enabled = enabled
    fallbacks = v.string_list(data, "fallbacks")
    if fallbacks is not None:
        _check_no_loop(session, model.name, fallbacks)
        model.fallbacks = fallbacks


def create_model(session: Session, data: dict) -> ModelConfig:
    """Add a model; 400 on unknown provider, bad price or a fallback loop."""
    v.reject_unknown(data, MODEL_FIELDS)
    name = v.string(data, "name", required=True, max_len=128)
    v.string(data, "provider", required=True)
    if find_model(session, name) is not None:
        raise bad_request(f"Model '{name}' already exists", code="already_exists", param="name")
    model = ModelConfig(name=name, upstream_model=name, fallbacks=[], enabled=True,
                        input_cost_per_1m=Decimal(0), output_cost_per_1m=Decimal(0))
    _apply_model_fields(session, model, data)
    session.add(model)
    session.flush()
    return model


def update_model(session: Session, name: str, data: dict) -> ModelConfig:
    """Change a model's fields (name is fixed); validated before anything is written."""
    v.reject_unknown(data, MODEL_FIELDS - {"name"})
    model = get_model(session, name)
    with session.no_autoflush:
        _apply_model_fields(session, model, data)
    session.flush()
    return model


def delete_model(session: Session, name: str) -> None:
    """Remove a model that is no other model's fallback."""
    model = get_model(session, name)
    users = [m.name for m in list_models(session) if name in (m.fallbacks or [])]
    if users:
        raise ApiError(409, f"Model '{name}' is a fallback of: {', '.join(users)}", code="in_use")
    session.delete(model)


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
    provider_id: int
    kind: str
    api_base: str
    provider_enabled: bool
    input_cost_per_1m: Decimal
    output_cost_per_1m: Decimal
    cached_input_cost_per_1m: Decimal | None
    provider_key: str | None = field(default=None, repr=False)  # decrypted; never printed

    @property
    def enabled(self) -> bool:
        """Chains hold enabled models only."""
        return True


def load_chain(session: Session, name: str, *, encryption_key: bytes | None) -> list[ChainEntry]:
    """The model's fallback chain as detached entries; with an encryption key, providers' keys decrypted."""
    from llmproxy.crypto import DecryptionError

    entries = []
    for model in fallback_chain(session, name):
        provider = model.provider
        try:
            key = provider_default_key(provider, encryption_key=encryption_key) if encryption_key else None
        except DecryptionError:
            import logging

            logging.getLogger(__name__).error("stored key of provider %s cannot be decrypted", provider.name)
            key = None
        entries.append(ChainEntry(
            model=model.name, upstream_model=model.upstream_model, provider=provider.name, provider_id=provider.id,
            kind=provider.kind, api_base=provider.api_base, provider_enabled=provider.enabled,
            input_cost_per_1m=model.input_cost_per_1m, output_cost_per_1m=model.output_cost_per_1m,
            cached_input_cost_per_1m=model.cached_input_cost_per_1m, provider_key=key))
    return entries


def seed_defaults(session: Session) -> int:
    """Insert the default providers and models that are missing; return how many rows were added."""
    added = 0
    for spec in DEFAULT_PROVIDERS:
        if session.scalar(select(Provider.id).where(Provider.name == spec["name"])) is None:
            session.add(Provider(enabled=True, **spec))
            added += 1
    session.flush()
    for spec in DEFAULT_MODELS:
        if find_model(session, spec["name"]) is None:
            provider = session.scalar(select(Provider).where(Provider.name == spec["provider"]))
            session.add(ModelConfig(
                name=spec["name"], provider_id=provider.id, upstream_model=spec["name"],
                fallbacks=spec.get("fallbacks", []), enabled=True,
                input_cost_per_1m=Decimal(spec["input_cost_per_1m"]),
                output_cost_per_1m=Decimal(spec["output_cost_per_1m"]),
                context_window=spec["context_window"],
            ))
            added += 1
    session.flush()
    return added
