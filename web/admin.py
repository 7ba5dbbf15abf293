"""Admin routes (ADMIN_API_KEY): keys, providers, models."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from llmproxy import catalog, keys
from llmproxy.serializers import key_json, model_json, provider_json
from web.auth import authenticate_admin
from web.jsonbody import json_body
from web.services import announce_config_change, services
from web.session import db

bp = Blueprint("admin", __name__, url_prefix="/admin")
bp.before_request(authenticate_admin)


@bp.after_request
def _announce_changes(response):
    """After a committed change, tell every process to drop its snapshots (see llmproxy.snapshots)."""
    if request.method in ("POST", "PATCH", "DELETE") and response.status_code < 400:
        announce_config_change()
    return response


def _list(items):
    return jsonify({"object": "list", "data": items})


@bp.post("/keys")
def create_key():
    """Create a virtual key; the secret is in this response only."""
    key, secret = keys.create_key(db(), json_body(optional=True))
    return jsonify({**key_json(key), "key": secret}), 201


@bp.get("/keys")
def list_keys():
    """All virtual keys."""
    return _list([key_json(k) for k in keys.list_keys(db())])


@bp.get("/keys/<key_id>")
def get_key(key_id):
    """One key."""
    return jsonify(key_json(keys.get_key(db(), key_id)))


@bp.patch("/keys/<key_id>")
def update_key(key_id):
    """Change a key's name, limits, budget or allowed models."""
    key = keys.get_key(db(), key_id)
    keys.apply_key_fields(db(), key, json_body())
    return jsonify(key_json(key))


@bp.delete("/keys/<key_id>")
def revoke_key(key_id):
    """Revoke a key; every process refuses it from the next request."""
    key = keys.get_key(db(), key_id)
    keys.revoke_key(db(), key)
    return jsonify(key_json(key))


@bp.get("/providers")
def list_providers():
    """All providers."""
    return _list([provider_json(p) for p in catalog.list_providers(db())])


@bp.post("/providers")
def create_provider():
    """Add a provider (its api_key is stored encrypted)."""
    provider = catalog.create_provider(db(), json_body(), encryption_key=services().settings.encryption_key)
    return jsonify(provider_json(provider)), 201


@bp.get("/providers/<name>")
def get_provider(name):
    """One provider."""
    return jsonify(provider_json(catalog.get_provider(db(), name)))


@bp.patch("/providers/<name>")
def update_provider(name):
    """Change a provider."""
    provider = catalog.update_provider(db(), name, json_body(), encryption_key=services().settings.encryption_key)
    return jsonify(provider_json(provider))


@bp.delete("/providers/<name>")
def delete_provider(name):
    """Remove a provider no model uses."""
    catalog.delete_provider(db(), name)
    return jsonify({"name": name, "object": "provider", "deleted": True})


@bp.get("/models")
def list_models():
    """All configured models."""
    return _list([model_json(m) for m in catalog.list_models(db())])


@bp.post("/models")
def create_model():
    """Add a model."""
    return jsonify(model_json(catalog.create_model(db(), json_body()))), 201


@bp.get("/models/<path:name>")
def get_model(name):
    """One model."""
    return jsonify(model_json(catalog.get_model(db(), name)))


@bp.patch("/models/<path:name>")
def update_model(name):
    """Change a model's provider, prices, fallbacks…"""
    return jsonify(model_json(catalog.update_model(db(), name, json_body())))


@bp.delete("/models/<path:name>")
def delete_model(name):
    """Remove a model that is nobody's fallback."""
    catalog.delete_model(db(), name)
    return jsonify({"name": name, "object": "model_config", "deleted": True})
