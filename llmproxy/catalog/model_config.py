"""Models: lookups, validated changes (unknown providers and fallback loops refused) and their admin JSON."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from llmproxy import json_schema as js
from llmproxy import validation as v
from llmproxy.catalog.deployment_config import DEPLOYMENT_SCHEMA, check_serves, deployment_json
from llmproxy.catalog.modes import CHAT, MODES
from llmproxy.catalog.provider_config import provider_named
from llmproxy.errors import ApiError, bad_request, not_found
from llmproxy.jsontypes import JSON
from llmproxy.storage.models import Deployment, ModelConfig
from llmproxy.storage.money import money
from llmproxy.storage.timestamps import to_epoch

MODEL_SCHEMA = js.record(
    {
        "name": js.string(),
        "object": js.const("model_config"),
        "mode": js.enum(MODES),
        "provider": js.string(),
        "upstream_model": js.string(),
        "fallbacks": js.array(js.string()),
        "input_cost_per_1m": js.money(),
        "output_cost_per_1m": js.money(),
        "cached_input_cost_per_1m": js.money(),
        "cache_write_cost_per_1m": js.money(),
        "context_window": js.nullable(js.integer(1)),
        "enabled": js.BOOLEAN,
        "deployments": js.array(DEPLOYMENT_SCHEMA),
        "created_at": js.epoch(),
        "updated_at": js.epoch(),
    }
)


def model_json(model: ModelConfig) -> JSON:
    """A model with its provider (its first deployment's), prices per 1M tokens, fallbacks and deployments."""
    return {
        "name": model.name,
        "object": "model_config",
        "mode": model.mode,
        "provider": model.provider.name,
        "upstream_model": model.upstream_model,
        "fallbacks": list(model.fallbacks or []),
        "input_cost_per_1m": money(model.input_cost_per_1m),
        "output_cost_per_1m": money(model.output_cost_per_1m),
        "cached_input_cost_per_1m": money(model.cached_input_cost_per_1m),
        "cache_write_cost_per_1m": money(model.cache_write_cost_per_1m),
        "context_window": model.context_window,
        "enabled": model.enabled,
        "deployments": [deployment_json(d, model.name) for d in model.deployments],
        "created_at": to_epoch(model.created_at),
        "updated_at": to_epoch(model.updated_at),
    }


# What POST /admin/models and PATCH /admin/models/{name} take (the name is fixed once created).
MODEL_BODY = v.Body(
    {
        "name": v.text(max_len=128),
        "mode": v.choice(MODES),
        "provider": v.text(max_len=64),
        "upstream_model": v.text(max_len=128),
        "fallbacks": v.names(),
        "input_cost_per_1m": v.money(nullable=False),
        "output_cost_per_1m": v.money(nullable=False),
        "cached_input_cost_per_1m": v.money(),
        "cache_write_cost_per_1m": v.money(),
        "context_window": v.whole(minimum=1),
        "enabled": v.flag(),
    },
    required=("name", "provider"),
)


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
            loop = " -> ".join(path[path.index(node) :] + [node])
            raise bad_request(f"Fallback chain loops: {loop}", code="fallback_loop", param="fallbacks")
        for nxt in graph.get(node, []):
            visit(nxt, path + [node])

    visit(name, [])


def _apply_model_fields(session: Session, model: ModelConfig, data: JSON) -> None:
    # A model's provider and upstream model are its first deployment's (a new model's is created here).
    provider_name = MODEL_BODY.read(data, "provider")
    upstream = MODEL_BODY.read(data, "upstream_model")
    if provider_name is not None or upstream is not None:
        if not model.deployments:
            model.deployments.append(Deployment(upstream_model=model.name, weight=1, enabled=True))
        first = model.first_deployment
        if provider_name is not None:
            first.provider = provider_named(session, provider_name, param="provider")
        if upstream is not None:
            first.upstream_model = upstream
    for price in ("input_cost_per_1m", "output_cost_per_1m", "cached_input_cost_per_1m", "cache_write_cost_per_1m"):
        if price in data:
            setattr(model, price, MODEL_BODY.read(data, price))
    if "context_window" in data:
        model.context_window = MODEL_BODY.read(data, "context_window")
    enabled = MODEL_BODY.read(data, "enabled")
    if enabled is not None:
        model.enabled = enabled
    mode = MODEL_BODY.read(data, "mode")
    if mode is not None:
        model.mode = mode
    fallbacks = MODEL_BODY.read(data, "fallbacks")
    if fallbacks is not None:
        _check_no_loop(session, model.name, fallbacks)
        model.fallbacks = fallbacks
    _check_mode(session, model, param="mode" if "mode" in data else "provider")


def _check_mode(session: Session, model: ModelConfig, *, param: str) -> None:
    """An embedding model needs a provider that serves embeddings; a chain never mixes chat and embedding models."""
    for deployment in model.deployments:
        check_serves(deployment, model.mode, param=param)
    others = {m.name: m for m in list_models(session) if m.name != model.name}
    for name in model.fallbacks or []:
        if name in others and others[name].mode != model.mode:
            raise bad_request(
                f"Fallback '{name}' is a {others[name].mode} model; a {model.mode} model falls back to its kind only",
                code="mode_mismatch",
                param="fallbacks",
            )
    for other in others.values():
        if model.name in (other.fallbacks or []) and other.mode != model.mode:
            raise bad_request(
                f"Model '{other.name}' ({other.mode}) falls back to this one, which must stay a {other.mode} model",
                code="mode_mismatch",
                param="mode",
            )


def create_model(session: Session, data: JSON) -> ModelConfig:
    """Add a model and its first deployment (provider, upstream_model); 400 on bad input or a fallback loop."""
    MODEL_BODY.check_known(data)
    name = MODEL_BODY.require(data, "name")
    MODEL_BODY.require(data, "provider")
    if find_model(session, name) is not None:
        raise bad_request(f"Model '{name}' already exists", code="already_exists", param="name")
    model = ModelConfig(
        name=name,
        mode=CHAT,
        fallbacks=[],
        enabled=True,
        input_cost_per_1m=Decimal(0),
        output_cost_per_1m=Decimal(0),
    )
    _apply_model_fields(session, model, data)
    session.add(model)
    session.flush()
    return model


def update_model(session: Session, name: str, data: JSON) -> ModelConfig:
    """Change a model's fields (name is fixed); validated before anything is written."""
    MODEL_BODY.check_known(data, fixed={"name"})
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
