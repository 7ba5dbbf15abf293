"""Admin routes (ADMIN_API_KEY) for a model's deployments: list, add, change, remove."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from llmproxy import json_schema as js
from llmproxy.catalog import deployment_config
from llmproxy.catalog.deployment_config import DEPLOYMENT_BODY, DEPLOYMENT_SCHEMA, deployment_json
from web.auth import authenticate_admin
from web.context import announce_config_change, db, resources
from web.jsonbody import json_body
from web.openapi.operation import Auth, json_reply, operation

bp = Blueprint("admin_deployments", __name__, url_prefix="/admin/models")
bp.before_request(authenticate_admin)

_DEPLOYMENT = {200: json_reply("The deployment.", DEPLOYMENT_SCHEMA)}


@bp.after_request
def _announce_changes(response):
    """After a committed change, tell every process to drop its snapshots (see llmproxy.snapshots)."""
    if request.method in ("POST", "PATCH", "DELETE") and response.status_code < 400:
        announce_config_change()
    return response


@bp.get("/<path:name>/deployments")
@operation(
    auth=Auth.ADMIN,
    replies={
        200: json_reply(
            "The model's deployments.", js.record({"object": js.const("list"), "data": js.array(DEPLOYMENT_SCHEMA)})
        )
    },
)
def list_deployments(name):
    """A model's deployments, the first being its own provider and upstream model."""
    rows = deployment_config.list_deployments(db(), name)
    return jsonify({"object": "list", "data": [deployment_json(d, name) for d in rows]})


@bp.post("/<path:name>/deployments")
@operation(
    auth=Auth.ADMIN,
    body=DEPLOYMENT_BODY.schema(creating=True),
    replies={201: json_reply("The deployment.", DEPLOYMENT_SCHEMA)},
)
def add_deployment(name):
    """Add a deployment to a model (its api_key is stored encrypted)."""
    deployment = deployment_config.add_deployment(
        db(), name, json_body(), encryption_key=resources().settings.encryption_key
    )
    return jsonify(deployment_json(deployment, name)), 201


@bp.patch("/<path:name>/deployments/<deployment_id>")
@operation(auth=Auth.ADMIN, body=DEPLOYMENT_BODY.schema(creating=False), replies=_DEPLOYMENT)
def update_deployment(name, deployment_id):
    """Change a deployment's provider, endpoint, key, weight, limits or state."""
    deployment = deployment_config.update_deployment(
        db(), name, deployment_id, json_body(), encryption_key=resources().settings.encryption_key
    )
    return jsonify(deployment_json(deployment, name))


@bp.delete("/<path:name>/deployments/<deployment_id>")
@operation(
    auth=Auth.ADMIN,
    replies={
        200: json_reply(
            "Removed.", js.record({"id": js.integer(1), "object": js.const("deployment"), "deleted": js.const(True)})
        )
    },
)
def remove_deployment(name, deployment_id):
    """Remove a deployment; a model's last one cannot be removed (409)."""
    removed = deployment_config.remove_deployment(db(), name, deployment_id)
    return jsonify({"id": removed, "object": "deployment", "deleted": True})
