"""Deployments of a model: validated changes, their stored (encrypted) key and their admin JSON.

A model always has at least one deployment; its first (lowest id) is what the model shows as its
`provider` and `upstream_model` (see llmproxy.catalog.model_config).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from llmproxy import json_schema as js
from llmproxy import validation as v
from llmproxy.catalog.modes import EMBEDDING
from llmproxy.catalog.provider_config import api_base_field, provider_named
from llmproxy.errors import ApiError, bad_request, not_found
from llmproxy.jsontypes import JSON
from llmproxy.keys import crypto
from llmproxy.keys.credentials import deployment_context
from llmproxy.providers import get_provider
from llmproxy.storage.models import Deployment, ModelConfig
from llmproxy.storage.timestamps import to_epoch

MAX_WEIGHT = 1000

DEPLOYMENT_SCHEMA = js.record(
    {
        "id": js.integer(1),
        "object": js.const("deployment"),
        "model": js.string(),
        "provider": js.string(),
        "api_base": js.nullable(js.string()),
        "has_api_key": js.BOOLEAN,
        "upstream_model": js.string(),
        "weight": js.integer(1, MAX_WEIGHT),
        "rpm_limit": js.nullable(js.integer(1)),
        "tpm_limit": js.nullable(js.integer(1)),
        "enabled": js.BOOLEAN,
        "created_at": js.epoch(),
        "updated_at": js.epoch(),
    }
)


def deployment_json(deployment: Deployment, model_name: str) -> JSON:
    """A deployment; its own api_base (null: the provider's) and whether it has its own key, never the key."""
    return {
        "id": deployment.id,
        "object": "deployment",
        "model": model_name,
        "provider": deployment.provider.name,
        "api_base": deployment.api_base,
        "has_api_key": bool(deployment.api_key_enc),
        "upstream_model": deployment.upstream_model,
        "weight": deployment.weight,
        "rpm_limit": deployment.rpm_limit,
        "tpm_limit": deployment.tpm_limit,
        "enabled": deployment.enabled,
        "created_at": to_epoch(deployment.created_at),
        "updated_at": to_epoch(deployment.updated_at),
    }


# What POST /admin/models/{name}/deployments and PATCH …/deployments/{id} take.
DEPLOYMENT_BODY = v.Body(
    {
        "provider": v.text(max_len=64),
        "api_base": api_base_field(),
        "api_key": v.secret(),
        "upstream_model": v.text(max_len=128),
        "weight": v.Field(
            lambda data, name: v.optional_int(data, name, minimum=1, maximum=MAX_WEIGHT),
            js.integer(1, MAX_WEIGHT),
            nullable=False,
        ),
        "rpm_limit": v.whole(minimum=1),
        "tpm_limit": v.whole(minimum=1),
        "enabled": v.flag(),
    },
    required=("provider",),
)


def _model(session: Session, model_name: str) -> ModelConfig:
    # Not model_config.get_model: that module shows deployments through this one, which must not import it back.
    model = session.scalar(select(ModelConfig).where(ModelConfig.name == model_name))
    if model is None:
        raise not_found("model")
    return model


def list_deployments(session: Session, model_name: str) -> list[Deployment]:
    """The model's deployments by id (404 for an unknown model)."""
    return list(_model(session, model_name).deployments)


def all_deployments(session: Session) -> list[tuple[str, Deployment]]:
    """(model name, deployment) of every deployment, by model and id."""
    rows = session.execute(
        select(ModelConfig.name, Deployment).join(Deployment.model).order_by(ModelConfig.name, Deployment.id)
    )
    return [(name, deployment) for name, deployment in rows]


def get_deployment(session: Session, model_name: str, deployment_id: int | str) -> Deployment:
    """One deployment of the model (its id as a number or the path's text); 404 when unknown or another model's."""
    text = str(deployment_id)
    deployment = session.get(Deployment, int(text)) if text.isascii() and text.isdigit() and len(text) <= 9 else None
    if deployment is None or deployment.model.name != model_name:
        raise not_found("deployment")
    return deployment


def _apply_fields(session: Session, deployment: Deployment, data: JSON) -> None:
    """Set the given fields but the key (read once by _check_all before: a bad one was refused already)."""
    provider_name = DEPLOYMENT_BODY.read(data, "provider")
    if provider_name is not None:
        deployment.provider = provider_named(session, provider_name, param="provider")
    if "api_base" in data:
        api_base = DEPLOYMENT_BODY.read(data, "api_base")
        deployment.api_base = api_base.rstrip("/") if api_base else None
    upstream = DEPLOYMENT_BODY.read(data, "upstream_model")
    if upstream is not None:
        deployment.upstream_model = upstream
    weight = DEPLOYMENT_BODY.read(data, "weight")
    if weight is not None:
        deployment.weight = weight
    for limit in ("rpm_limit", "tpm_limit"):
        if limit in data:
            setattr(deployment, limit, DEPLOYMENT_BODY.read(data, limit))
    enabled = DEPLOYMENT_BODY.read(data, "enabled")
    if enabled is not None:
        deployment.enabled = enabled


def check_serves(deployment: Deployment, mode: str, *, param: str) -> None:
    """400 when the deployment's provider cannot serve a model of this mode (embeddings need a provider with them)."""
    provider = deployment.provider
    if mode == EMBEDDING and not get_provider(provider.kind).embeds:
        raise bad_request(f"Provider '{provider.name}' ({provider.kind}) serves no embeddings", param=param)


def _set_key(deployment: Deployment, data: JSON, *, encryption_key: bytes) -> None:
    """Seal the given key under the deployment's id (an empty or null key: the provider's is used again)."""
    if "api_key" not in data:
        return
    secret = DEPLOYMENT_BODY.read(data, "api_key")
    context = deployment_context(deployment.id)
    deployment.api_key_enc = crypto.encrypt(secret, key=encryption_key, context=context) if secret else None


def _check_all(data: JSON) -> None:
    """Read every given field once, so a bad one is refused before any is applied."""
    if "weight" in data and data["weight"] is None:
        raise bad_request(f"'weight' must be an integer from 1 to {MAX_WEIGHT}", param="weight")
    for name in data:
        DEPLOYMENT_BODY.read(data, name)


def add_deployment(session: Session, model_name: str, data: JSON, *, encryption_key: bytes) -> Deployment:
    """Add a deployment to the model; 400 naming the field on bad input (nothing stored), 404 for an unknown model."""
    DEPLOYMENT_BODY.check_known(data)
    model = _model(session, model_name)
    DEPLOYMENT_BODY.require(data, "provider")
    _check_all(data)
    deployment = Deployment(upstream_model=model.name, weight=1, enabled=True)
    with session.no_autoflush:
        _apply_fields(session, deployment, data)
        check_serves(deployment, model.mode, param="provider")
    model.deployments.append(deployment)
    session.flush()  # its id binds its key
    _set_key(deployment, data, encryption_key=encryption_key)
    session.flush()
    return deployment


def update_deployment(
    session: Session, model_name: str, deployment_id: int | str, data: JSON, *, encryption_key: bytes
) -> Deployment:
    """Change a deployment's fields; validated before anything is written."""
    DEPLOYMENT_BODY.check_known(data)
    deployment = get_deployment(session, model_name, deployment_id)
    _check_all(data)
    with session.no_autoflush:
        _apply_fields(session, deployment, data)
        check_serves(deployment, deployment.model.mode, param="provider")
    _set_key(deployment, data, encryption_key=encryption_key)
    session.flush()
    return deployment


def remove_deployment(session: Session, model_name: str, deployment_id: int | str) -> int:
    """Remove a deployment and return its id; 409 for the model's last one (a model needs one to be served)."""
    deployment = get_deployment(session, model_name, deployment_id)
    model = deployment.model
    if len(model.deployments) <= 1:
        raise ApiError(409, f"Deployment {deployment_id} is the last of model '{model_name}'", code="in_use")
    model.deployments.remove(deployment)
    session.flush()
    return deployment.id
