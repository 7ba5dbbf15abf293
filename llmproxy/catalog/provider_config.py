"""Providers: lookups, validated changes, their stored (encrypted) default key and their admin JSON."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from llmproxy import validation as v
from llmproxy.errors import ApiError, bad_request, not_found
from llmproxy.jsontypes import JSON
from llmproxy.keys import crypto
from llmproxy.keys.credentials import provider_context
from llmproxy.providers import provider_kinds  # importing the package registers every adapter's kind
from llmproxy.storage.models import ModelConfig, Provider
from llmproxy.storage.timestamps import to_epoch


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


PROVIDER_FIELDS = {"name", "kind", "api_base", "api_key", "enabled"}


def get_provider(session: Session, name: str) -> Provider:
    """The provider with this name, or 404."""
    provider = session.scalar(select(Provider).where(Provider.name == name))
    if provider is None:
        raise not_found("provider")
    return provider


def list_providers(session: Session) -> list[Provider]:
    """All providers by name."""
    return list(session.scalars(select(Provider).order_by(Provider.name)))


def _apply_provider_fields(provider: Provider, data: JSON, *, encryption_key: bytes) -> None:
    kind = v.string(data, "kind")
    if kind is not None:
        kinds = provider_kinds()
        if kind not in kinds:
            raise bad_request(f"'kind' must be one of {', '.join(kinds)}", param="kind")
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


def create_provider(session: Session, data: JSON, *, encryption_key: bytes) -> Provider:
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


def update_provider(session: Session, name: str, data: JSON, *, encryption_key: bytes) -> Provider:
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
