"""Virtual keys: creation (only the hash is stored), lookup, limits and revocation, and their admin JSON."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from llmproxy import json_schema as js
from llmproxy import validation as v
from llmproxy.errors import bad_request, not_found
from llmproxy.ids import new_id
from llmproxy.jsontypes import JSON
from llmproxy.storage.models import ApiKey, ModelConfig
from llmproxy.storage.money import money
from llmproxy.storage.timestamps import to_epoch, utcnow

KEY_SCHEMA = js.record(
    {
        "id": js.string(),
        "object": js.const("api_key"),
        "name": js.string(),
        "prefix": js.string(),
        "rpm_limit": js.nullable(js.integer(1)),
        "tpm_limit": js.nullable(js.integer(1)),
        "budget_usd": js.money(),
        "spend_usd": js.money(),
        "models": js.nullable(js.array(js.string())),
        "max_parallel_requests": js.nullable(js.integer(1)),
        "max_queued_jobs": js.nullable(js.integer(1)),
        "max_file_storage_bytes": js.nullable(js.integer(0)),
        "created_at": js.epoch(),
        "revoked_at": js.epoch(),
        "active": js.BOOLEAN,
    }
)
# A key just created: the secret is shown this once.
NEW_KEY_SCHEMA = js.record({**KEY_SCHEMA["properties"], "key": js.string()})


def key_json(key: ApiKey) -> JSON:
    """A virtual key as the admin API shows it (never the secret)."""
    return {
        "id": key.id,
        "object": "api_key",
        "name": key.name,
        "prefix": key.prefix,
        "rpm_limit": key.rpm_limit,
        "tpm_limit": key.tpm_limit,
        "budget_usd": money(key.budget_usd),
        "spend_usd": money(key.spend_usd),
        "models": key.allowed_models,
        "max_parallel_requests": key.max_parallel_requests,
        "max_queued_jobs": key.max_queued_jobs,
        "max_file_storage_bytes": key.max_file_storage_bytes,
        "created_at": to_epoch(key.created_at),
        "revoked_at": to_epoch(key.revoked_at),
        "active": key.revoked_at is None,
    }


KEY_PREFIX = "sk-"

DISPLAY_CHARS = 10


def generate_secret() -> str:
    """A new virtual key: `sk-` and 256 random bits, base64url."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """SHA-256 hex of a key; a plain hash suffices because keys carry 256 random bits."""
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(session: Session, data: JSON | None = None) -> tuple[ApiKey, str]:
    """Create a key from admin fields; return the row and the secret, which is never available again."""
    secret = generate_secret()
    key = ApiKey(
        id=new_id("key"), key_hash=hash_secret(secret), prefix=secret[:DISPLAY_CHARS], name="", spend_usd=Decimal(0)
    )
    apply_key_fields(session, key, data or {})
    session.add(key)
    session.flush()
    return key, secret


def find_active_key(session: Session, secret: str) -> ApiKey | None:
    """The unrevoked key with this secret, or None."""
    if not secret.startswith(KEY_PREFIX) or len(secret) > 200:
        return None
    key = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_secret(secret)))
    if key is None or key.revoked_at is not None:
        return None
    return key


@dataclass(frozen=True)
class KeyInfo:
    """What request handling reads of an active key, detached from any session (safe to cache)."""

    id: str
    name: str
    prefix: str
    rpm_limit: int | None
    tpm_limit: int | None
    budget_usd: Decimal | None
    spend_usd: Decimal
    allowed_models: list[str] | None
    max_parallel_requests: int | None = None  # None: the deployment's default
    max_queued_jobs: int | None = None  # None: the deployment's default


def key_info(key: ApiKey | None) -> KeyInfo | None:
    """A detached snapshot of a key (None stays None)."""
    if key is None:
        return None
    return KeyInfo(
        id=key.id,
        name=key.name,
        prefix=key.prefix,
        rpm_limit=key.rpm_limit,
        tpm_limit=key.tpm_limit,
        budget_usd=key.budget_usd,
        spend_usd=key.spend_usd or Decimal(0),
        allowed_models=list(key.allowed_models) if key.allowed_models is not None else None,
        max_parallel_requests=key.max_parallel_requests,
        max_queued_jobs=key.max_queued_jobs,
    )


def active_key_info(session: Session, key_id: str) -> KeyInfo | None:
    """A detached snapshot of the key with this id, or None if it is unknown or revoked."""
    key = session.get(ApiKey, key_id)
    return None if key is None or key.revoked_at is not None else key_info(key)


def revoke_key(session: Session, key: ApiKey) -> None:
    """Mark a key revoked (idempotent)."""
    if key.revoked_at is None:
        key.revoked_at = utcnow()


MAX_STORAGE_BYTES = 2**63 - 1  # a BIGINT

# What POST /admin/keys and PATCH /admin/keys/{id} take; `max_file_storage_bytes` 0 is this key's "no quota"
# (null falls back to the deployment's default).
KEY_BODY = v.Body(
    {
        "name": v.text(max_len=200),
        "rpm_limit": v.whole(minimum=1),
        "tpm_limit": v.whole(minimum=1),
        "budget_usd": v.money(),
        "models": v.names(),
        "max_parallel_requests": v.whole(minimum=1),
        "max_queued_jobs": v.whole(minimum=1),
        "max_file_storage_bytes": v.whole(maximum=MAX_STORAGE_BYTES),
    }
)


def apply_key_fields(session: Session, key: ApiKey, data: JSON) -> None:
    """Validate and set a key's editable fields (name, limits, budget, allowed models, fair-use caps, file quota)."""
    KEY_BODY.check_known(data)
    if "name" in data:
        key.name = KEY_BODY.read(data, "name") or ""
    for field in ("rpm_limit", "tpm_limit", "max_parallel_requests", "max_queued_jobs", "max_file_storage_bytes"):
        if field in data:
            setattr(key, field, KEY_BODY.read(data, field))
    if "budget_usd" in data:
        key.budget_usd = KEY_BODY.read(data, "budget_usd")
    if "models" in data:
        models = KEY_BODY.read(data, "models")
        known = set(session.scalars(select(ModelConfig.name).where(ModelConfig.name.in_(models or []))))
        for name in models or []:
            if name not in known:
                raise bad_request(f"Unknown model '{name}'", code="model_not_found", param="models")
        key.allowed_models = models


def get_key(session: Session, key_id: str) -> ApiKey:
    """The key with this id, or 404."""
    key = session.get(ApiKey, key_id)
    if key is None:
        raise not_found("key")
    return key


def list_keys(session: Session) -> list[ApiKey]:
    """All keys, newest first."""
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id)))
