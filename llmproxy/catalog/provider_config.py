"""Providers: lookups, validated changes, their stored (encrypted) default key and their admin JSON."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from llmproxy import json_schema as js
from llmproxy import validation as v
from llmproxy.catalog.modes import EMBEDDING
from llmproxy.errors import ApiError, bad_request, not_found
from llmproxy.jsontypes import JSON
from llmproxy.keys import crypto
from llmproxy.keys.credentials import provider_context
from llmproxy.providers import get_provider as adapter
from llmproxy.providers import provider_kinds  # importing the package registers every adapter's kind
from llmproxy.storage.models import Deployment, ModelConfig, Provider
from llmproxy.storage.timestamps import to_epoch

PROVIDER_SCHEMA = js.record(
    {
        "name": js.string(),
        "object": js.const("provider"),
        "kind": js.string(),
        "api_base": js.string(),
        "has_api_key": js.BOOLEAN,
        "enabled": js.BOOLEAN,
        "created_at": js.epoch(),
        "updated_at": js.epoch(),
    }
)


def provider_json(provider: Provider) -> JSON:
    """A provider; whether a key is configured, never the key."""
    return {
        "name": provider.name,
        "object": "provider",
        "kind": provider.kind,
        "api_base": provider.api_base,
        "has_api_key": bool(provider.api_key_enc),
        "enabled": provider.enabled,
        "created_at": to_epoch(provider.created_at),
        "updated_at": to_epoch(provider.updated_at),
    }


def _api_base(data: JSON, name: str) -> str | None:
    value = v.string(data, name, max_len=512)
    if value is not None and not value.startswith(("http://", "https://")):
        raise bad_request("'api_base' must be an http(s) URL", param=name)
    return value


def api_base_field() -> v.Field:
    """An http(s) base URL of at most 512 characters."""
    return v.Field(_api_base, js.string(maxLength=512, pattern="^https?://"))


# What POST /admin/providers and PATCH /admin/providers/{name} take (the name is fixed once created).
PROVIDER_BODY = v.Body(
    {
        "name": v.text(max_len=64),
        "kind": v.choice(provider_kinds()),
        "api_base": api_base_field(),
        "api_key": v.secret(),
        "enabled": v.flag(),
    },
    required=("name", "kind", "api_base"),
)


def get_provider(session: Session, name: str) -> Provider:
    """The provider with this name, or 404."""
    provider = session.scalar(select(Provider).where(Provider.name == name))
    if provider is None:
        raise not_found("provider")
    return provider


def provider_named(session: Session, name: str, *, param: str) -> Provider:
    """The provider with this name, or 400 provider_not_found naming `param` (a body refers to it)."""
    provider = session.scalar(select(Provider).where(Provider.name == name))
    if provider is None:
        raise bad_request(f"Unknown provider '{name}'", code="provider_not_found", param=param)
    return provider


def list_providers(session: Session) -> list[Provider]:
    """All providers by name."""
    return list(session.scalars(select(Provider).order_by(Provider.name)))


def _apply_provider_fields(provider: Provider, data: JSON, *, encryption_key: bytes) -> None:
    kind = PROVIDER_BODY.read(data, "kind")
    if kind is not None:
        provider.kind = kind
    api_base = PROVIDER_BODY.read(data, "api_base")
    if api_base is not None:
        provider.api_base = api_base.rstrip("/")
    if "api_key" in data:
        secret = PROVIDER_BODY.read(data, "api_key")
        provider.api_key_enc = (
            crypto.encrypt(secret, key=encryption_key, context=provider_context(provider.name)) if secret else None
        )
    enabled = PROVIDER_BODY.read(data, "enabled")
    if enabled is not None:
        provider.enabled = enabled


def create_provider(session: Session, data: JSON, *, encryption_key: bytes) -> Provider:
    """Add a provider; 400 on bad input or a name in use."""
    PROVIDER_BODY.check_known(data)
    name = PROVIDER_BODY.require(data, "name")
    PROVIDER_BODY.require(data, "kind")
    PROVIDER_BODY.require(data, "api_base")
    if session.scalar(select(Provider.id).where(Provider.name == name)) is not None:
        raise bad_request(f"Provider '{name}' already exists", code="already_exists", param="name")
    provider = Provider(name=name, enabled=True)
    _apply_provider_fields(provider, data, encryption_key=encryption_key)
    session.add(provider)
    session.flush()
    return provider


def update_provider(session: Session, name: str, data: JSON, *, encryption_key: bytes) -> Provider:
    """Change a provider's fields (name is fixed)."""
    PROVIDER_BODY.check_known(data, fixed={"name"})
    provider = get_provider(session, name)
    _apply_provider_fields(provider, data, encryption_key=encryption_key)
    if not adapter(provider.kind).embeds:
        _check_no_embedding_models(session, provider)
    session.flush()
    return provider


def _check_no_embedding_models(session: Session, provider: Provider) -> None:
    """400 on `kind` when a kind without embeddings would serve an embedding model's deployment."""
    model = session.scalars(
        select(ModelConfig.name)
        .join(Deployment, Deployment.model_id == ModelConfig.id)
        .where(Deployment.provider_id == provider.id, ModelConfig.mode == EMBEDDING)
        .order_by(ModelConfig.name)
    ).first()
    if model is not None:
        raise bad_request(
            f"Provider '{provider.name}' serves the embedding model '{model}'; a provider of kind "
            f"'{provider.kind}' serves no embeddings",
            code="mode_mismatch",
            param="kind",
        )


def delete_provider(session: Session, name: str) -> None:
    """Remove a provider that no model's deployment uses."""
    provider = get_provider(session, name)
    users = session.scalars(
        select(ModelConfig.name)
        .join(Deployment, Deployment.model_id == ModelConfig.id)
        .where(Deployment.provider_id == provider.id)
        .distinct()
        .order_by(ModelConfig.name)
    ).all()
    if users:
        raise ApiError(409, f"Provider '{name}' is used by models: {', '.join(users)}", code="in_use")
    session.delete(provider)
