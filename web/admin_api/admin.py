"""Admin routes (ADMIN_API_KEY): keys, providers, models."""

from __future__ import annotations

import logging

import redis
from flask import Blueprint, jsonify, request

from llmproxy.catalog import model_config, provider_config
from llmproxy.catalog.model_config import model_json
from llmproxy.catalog.provider_config import provider_json
from llmproxy.jobs import events, key_changes
from llmproxy.keys import virtual_keys
from llmproxy.keys.virtual_keys import key_json
from web.auth import authenticate_admin
from web.context import announce_config_change, commit, db, resources
from web.jsonbody import json_body

log = logging.getLogger(__name__)
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
    key, secret = virtual_keys.create_key(db(), json_body(optional=True))
    return jsonify({**key_json(key), "key": secret}), 201


@bp.get("/keys")
def list_keys():
    """All virtual keys."""
    return _list([key_json(k) for k in virtual_keys.list_keys(db())])


@bp.get("/keys/<key_id>")
def get_key(key_id):
    """One key."""
    return jsonify(key_json(virtual_keys.get_key(db(), key_id)))


@bp.patch("/keys/<key_id>")
def update_key(key_id):
    """Change a key's name, limits, budget or allowed models."""
    key = virtual_keys.get_key(db(), key_id)
    data = json_body()
    virtual_keys.apply_key_fields(db(), key, data)
    if "models" in data:
        _reach_work_in_flight(key)
    return jsonify(key_json(key))


@bp.delete("/keys/<key_id>")
def revoke_key(key_id):
    """Revoke a key; every process refuses it from the next request, and its work in flight stops."""
    key = virtual_keys.get_key(db(), key_id)
    virtual_keys.revoke_key(db(), key)
    _reach_work_in_flight(key)
    return jsonify(key_json(key))


def _reach_work_in_flight(key):
    """A revocation or new allowed models reach the key's queued and running work (llmproxy.jobs.key_changes)."""
    announce_config_change()  # committed and announced first: from here on no worker starts it under the old rules
    client = resources().redis
    try:
        failed = key_changes.stop_disallowed_work(db(), client, key)
        commit()
        events.publish_many(client, failed)  # wake their long-polls
    except redis.RedisError:
        # The change is stored: queued work is refused when a worker reaches it; running work finishes.
        log.warning("could not reach the work in flight of key %s", key.id, exc_info=True)


@bp.get("/providers")
def list_providers():
    """All providers."""
    return _list([provider_json(p) for p in provider_config.list_providers(db())])


@bp.post("/providers")
def create_provider():
    """Add a provider (its api_key is stored encrypted)."""
    provider = provider_config.create_provider(db(), json_body(), encryption_key=resources().settings.encryption_key)
    return jsonify(provider_json(provider)), 201


@bp.get("/providers/<name>")
def get_provider(name):
    """One provider."""
    return jsonify(provider_json(provider_config.get_provider(db(), name)))


@bp.patch("/providers/<name>")
def update_provider(name):
    """Change a provider."""
    provider = provider_config.update_provider(
        db(), name, json_body(), encryption_key=resources().settings.encryption_key
    )
    return jsonify(provider_json(provider))


@bp.delete("/providers/<name>")
def delete_provider(name):
    """Remove a provider no model uses."""
    provider_config.delete_provider(db(), name)
    return jsonify({"name": name, "object": "provider", "deleted": True})


@bp.get("/models")
def list_models():
    """All configured models."""
    return _list([model_json(m) for m in model_config.list_models(db())])


@bp.post("/models")
def create_model():
    """Add a model."""
    return jsonify(model_json(model_config.create_model(db(), json_body()))), 201


@bp.get("/models/<path:name>")
def get_model(name):
    """One model."""
    return jsonify(model_json(model_config.get_model(db(), name)))


@bp.patch("/models/<path:name>")
def update_model(name):
    """Change a model's provider, prices, fallbacks…"""
    return jsonify(model_json(model_config.update_model(db(), name, json_body())))


@bp.delete("/models/<path:name>")
def delete_model(name):
    """Remove a model that is nobody's fallback."""
    model_config.delete_model(db(), name)
    return jsonify({"name": name, "object": "model_config", "deleted": True})
