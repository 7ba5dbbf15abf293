"""Provider keys at rest: callers' own keys per provider, and key rotation (resolution order: execution.build_steps)."""

from __future__ import annotations

from typing import cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from llmproxy.keys import crypto
from llmproxy.storage.models import Deployment, KeyCredential, Provider


def provider_context(name: str) -> str:
    """Associated data binding a provider's stored default key to its row."""
    return f"provider:{name}"


def deployment_context(deployment_id: int) -> str:
    """Associated data binding a deployment's own stored key to its row."""
    return f"deployment:{deployment_id}"


def credential_context(api_key_id: str, provider_name: str) -> str:
    """Associated data binding a caller's stored key to its owner and provider."""
    return f"credential:{api_key_id}:{provider_name}"


def save_credential(
    session: Session, *, api_key_id: str, provider: Provider, secret: str, encryption_key: bytes
) -> None:
    """Store (or, with an empty secret, remove) a caller's key for one provider."""
    row = session.scalar(
        select(KeyCredential).where(KeyCredential.api_key_id == api_key_id, KeyCredential.provider_id == provider.id)
    )
    if not secret:
        if row is not None:
            session.delete(row)
        return
    sealed = crypto.encrypt(secret, key=encryption_key, context=credential_context(api_key_id, provider.name))
    if row is None:
        session.add(KeyCredential(api_key_id=api_key_id, provider_id=provider.id, api_key_enc=sealed))
    else:
        row.api_key_enc = sealed


def saved_providers(session: Session, api_key_id: str) -> list[str]:
    """Names of the providers this key saved its own credential for."""
    return list(
        session.scalars(
            select(Provider.name)
            .join(KeyCredential, KeyCredential.provider_id == Provider.id)
            .where(KeyCredential.api_key_id == api_key_id)
            .order_by(Provider.name)
        )
    )


def load_key_credentials(session: Session, *, api_key_id: str, encryption_key: bytes) -> dict[str, str | None]:
    """All of a caller's saved keys by provider name, decrypted (None where one cannot be decrypted)."""
    saved: dict[str, str | None] = {}
    rows = session.execute(
        select(KeyCredential.api_key_enc, Provider.name).join(Provider).where(KeyCredential.api_key_id == api_key_id)
    ).all()
    for sealed, provider_name in rows:
        try:
            saved[provider_name] = crypto.decrypt(
                sealed, key=encryption_key, context=credential_context(api_key_id, provider_name)
            )
        except crypto.DecryptionError:
            saved[provider_name] = None
    return saved


def reencrypt_all(session: Session, *, old_key: bytes, new_key: bytes) -> int:
    """Re-seal every stored key (providers', callers' saved ones, deployments') under a new ENCRYPTION_KEY;
    return how many values changed."""

    def reseal(sealed: str | None, context: str) -> str:
        # Never None: each query below selects stored keys only.
        plain = crypto.decrypt(cast(str, sealed), key=old_key, context=context)
        return crypto.encrypt(plain, key=new_key, context=context)

    count = 0
    for provider in session.scalars(select(Provider).where(Provider.api_key_enc.is_not(None))):
        provider.api_key_enc = reseal(provider.api_key_enc, provider_context(provider.name))
        count += 1
    for row, provider_name in session.execute(select(KeyCredential, Provider.name).join(Provider)).all():
        row.api_key_enc = reseal(row.api_key_enc, credential_context(row.api_key_id, provider_name))
        count += 1
    for deployment in session.scalars(select(Deployment).where(Deployment.api_key_enc.is_not(None))):
        deployment.api_key_enc = reseal(deployment.api_key_enc, deployment_context(deployment.id))
        count += 1
    return count
