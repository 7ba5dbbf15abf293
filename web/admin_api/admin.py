"""Admin routes (ADMIN_API_KEY): keys, providers, models."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify, request

from llmproxy import json_schema as js
from llmproxy.catalog import model_config, provider_config
from llmproxy.catalog.model_config import MODEL_BODY, MODEL_SCHEMA, model_json
from llmproxy.catalog.provider_config import PROVIDER_BODY, PROVIDER_SCHEMA, provider_json
from llmproxy.keys import virtual_keys
from llmproxy.keys.virtual_keys import KEY_BODY, KEY_SCHEMA, NEW_KEY_SCHEMA, key_json
from web.auth import authenticate_admin
from web.context import announce_config_change, db, resources
from web.jsonbody import json_body
from web.key_changes import reach_work_in_flight
from web.openapi.operation import Auth, json_reply, operation

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


def _list_schema(item: js.Schema) -> js.Schema:
    return js.record({"object": js.const("list"), "data": js.array(item)})


def _deleted_schema(kind: str) -> js.Schema:
    return js.record({"name": js.string(), "object": js.const(kind), "deleted": js.const(True)})


_KEY = {200: json_reply("The key.", KEY_SCHEMA)}
_PROVIDER = {200: json_reply("The provider.", PROVIDER_SCHEMA)}
_MODEL = {200: json_reply("The model.", MODEL_SCHEMA)}


@bp.post("/keys")
@operation(
    auth=Auth.ADMIN,
    body=KEY_BODY.schema(creating=True),
    body_required=False,
    replies={201: json_reply("The key, with its secret `key` shown this once.", NEW_KEY_SCHEMA)},
)
def create_key():
    """Create a virtual key; the secret is in this response only."""
    key, secret = virtual_keys.create_key(db(), json_body(optional=True))
    return jsonify({**key_json(key), "key": secret}), 201


@bp.get("/keys")
@operation(auth=Auth.ADMIN, replies={200: json_reply("Every key.", _list_schema(KEY_SCHEMA))})
def list_keys():
    """All virtual keys."""
    return _list([key_json(k) for k in virtual_keys.list_keys(db())])


@bp.get("/keys/<key_id>")
@operation(auth=Auth.ADMIN, replies=_KEY)
def get_key(key_id):
    """One key."""
    return jsonify(key_json(virtual_keys.get_key(db(), key_id)))


@bp.patch("/keys/<key_id>")
@operation(auth=Auth.ADMIN, body=KEY_BODY.schema(creating=False), replies=_KEY)
def update_key(key_id):
    """Change a key's name, limits, budget or allowed models."""
    key = virtual_keys.get_key(db(), key_id)
    data = json_body()
    virtual_keys.apply_key_fields(db(), key, data)
    if "models" in data:
        reach_work_in_flight(key)
    return jsonify(key_json(key))


@bp.delete("/keys/<key_id>")
@operation(auth=Auth.ADMIN, replies=_KEY)
def revoke_key(key_id):
    """Revoke a key; every process refuses it from the next request, and its work in flight stops."""
    key = virtual_keys.get_key(db(), key_id)
    virtual_keys.revoke_key(db(), key)
    reach_work_in_flight(key)
    return jsonify(key_json(key))


@bp.get("/providers")
@operation(auth=Auth.ADMIN, replies={200: json_reply("Every provider.", _list_schema(PROVIDER_SCHEMA))})
def list_providers():
    """All providers."""
    return _list([provider_json(p) for p in provider_config.list_providers(db())])


@bp.post("/providers")
@operation(
    auth=Auth.ADMIN,
    body=PROVIDER_BODY.schema(creating=True),
    replies={201: json_reply("The provider.", PROVIDER_SCHEMA)},
)
def create_provider():
    """Add a provider (its api_key is stored encrypted)."""
    provider = provider_config.create_provider(db(), json_body(), encryption_key=resources().settings.encryption_key)
    return jsonify(provider_json(provider)), 201


@bp.get("/providers/<name>")
@operation(auth=Auth.ADMIN, replies=_PROVIDER)
def get_provider(name):
    """One provider."""
    return jsonify(provider_json(provider_config.get_provider(db(), name)))


@bp.patch("/providers/<name>")
@operation(auth=Auth.ADMIN, body=PROVIDER_BODY.schema(creating=False, fixed={"name"}), replies=_PROVIDER)
def update_provider(name):
    """Change a provider."""
    provider = provider_config.update_provider(
        db(), name, json_body(), encryption_key=resources().settings.encryption_key
    )
    return jsonify(provider_json(provider))


@bp.delete("/providers/<name>")
@operation(auth=Auth.ADMIN, replies={200: json_reply("Removed.", _deleted_schema("provider"))})
def delete_provider(name):
    """Remove a provider no model uses."""
    provider_config.delete_provider(db(), name)
    return jsonify({"name": name, "object": "provider", "deleted": True})


@bp.get("/models")
@operation(auth=Auth.ADMIN, replies={200: json_reply("Every model.", _list_schema(MODEL_SCHEMA))})
def list_models():
    """All configured models."""
    return _list([model_json(m) for m in model_config.list_models(db())])


@bp.post("/models")
@operation(
    auth=Auth.ADMIN, body=MODEL_BODY.schema(creating=True), replies={201: json_reply("The model.", MODEL_SCHEMA)}
)
def create_model():
    """Add a model."""
    return jsonify(model_json(model_config.create_model(db(), json_body()))), 201


@bp.get("/models/<path:name>")
@operation(auth=Auth.ADMIN, replies=_MODEL)
def get_model(name):
    """One model."""
    return jsonify(model_json(model_config.get_model(db(), name)))


@bp.patch("/models/<path:name>")
@operation(auth=Auth.ADMIN, body=MODEL_BODY.schema(creating=False, fixed={"name"}), replies=_MODEL)
def update_model(name):
    """Change a model's provider, prices, fallbacks…"""
    return jsonify(model_json(model_config.update_model(db(), name, json_body())))


@bp.delete("/models/<path:name>")
@operation(auth=Auth.ADMIN, replies={200: json_reply("Removed.", _deleted_schema("model_config"))})
def delete_model(name):
    """Remove a model that is nobody's fallback."""
    model_config.delete_model(db(), name)
    return jsonify({"name": name, "object": "model_config", "deleted": True})
