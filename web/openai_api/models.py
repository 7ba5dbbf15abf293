"""GET /v1/models: the models this key may use, as OpenAI lists them."""

from __future__ import annotations

from flask import Blueprint, jsonify

from llmproxy import json_schema as js
from llmproxy.catalog import model_config
from llmproxy.storage.timestamps import to_epoch
from web.auth import current_key, require_client
from web.context import db
from web.openapi.operation import Auth, json_reply, operation

bp = Blueprint("openai", __name__)
_MODEL = js.record({"id": js.string(), "object": js.const("model"), "created": js.epoch(), "owned_by": js.string()})
_MODEL_LIST = js.record({"object": js.const("list"), "data": js.array(_MODEL)})


bp.before_request(require_client)


@bp.get("/v1/models")
@bp.get("/models")
@operation(auth=Auth.KEY, replies={200: json_reply("The models this key may use.", _MODEL_LIST)})
def list_models():
    """OpenAI's model list: the enabled models this key may use."""
    allowed = current_key().allowed_models
    data = [
        {"id": m.name, "object": "model", "created": to_epoch(m.created_at), "owned_by": m.provider.name}
        for m in model_config.list_models(db())
        if m.enabled and (allowed is None or m.name in allowed)
    ]
    return jsonify({"object": "list", "data": data})
