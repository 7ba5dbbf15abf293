"""The original proxy's routes: /api/generate-virtual-key and /api/save-keys."""

from __future__ import annotations

from flask import Blueprint, jsonify

from llmproxy import json_schema as js
from llmproxy.catalog import provider_config
from llmproxy.errors import bad_request, forbidden, unauthorized
from llmproxy.keys import virtual_keys
from llmproxy.keys.credentials import save_credential, saved_providers
from llmproxy.keys.virtual_keys import KEY_BODY, KEY_SCHEMA, key_json
from llmproxy.validation import reject_unknown
from web.auth import authenticate_admin, bearer_token, is_admin_token
from web.context import announce_config_change, db, resources
from web.jsonbody import json_body
from web.openapi.operation import Auth, json_reply, operation

bp = Blueprint("compat", __name__, url_prefix="/api")


@bp.after_request
def _announce_changes(response):
    """Saved keys and new keys reach every process's snapshots at once."""
    if response.status_code < 400:
        announce_config_change()
    return response


_SAVE_FIELDS = {"openaiKey": "openai", "mistralKey": "mistral", "anthropicKey": "anthropic"}
_SAVE_SCHEMA = js.obj(
    {name: js.nullable(js.string()) for name in ("virtualKey", *_SAVE_FIELDS)},
    extra=False,
)
_SAVED_SCHEMA = js.record({"message": js.string(), "key_id": js.string(), "saved_providers": js.array(js.string())})


@bp.post("/generate-virtual-key")
@operation(
    auth=Auth.ADMIN,
    body=KEY_BODY.schema(creating=True),
    body_required=False,
    replies={
        201: json_reply(
            "The new key's secret as `virtualKey`, with the key.",
            js.record({"virtualKey": js.string(), **KEY_SCHEMA["properties"]}),
        )
    },
)
def generate_virtual_key():
    """Admin: create a key, answered in the original proxy's shape plus the key's id."""
    authenticate_admin()
    key, secret = virtual_keys.create_key(db(), json_body(optional=True))
    return jsonify({"virtualKey": secret, **key_json(key)}), 201


@bp.post("/save-keys")
@operation(auth=Auth.KEY_OR_ADMIN, body=_SAVE_SCHEMA, replies={200: json_reply("Saved.", _SAVED_SCHEMA)})
def save_keys():
    """Store the caller's own provider keys, encrypted; an empty string removes one."""
    data = json_body()
    token = bearer_token()
    named = data.get("virtualKey")
    if named is not None and not isinstance(named, str):
        raise bad_request("'virtualKey' must be a string", param="virtualKey")
    if is_admin_token(token):
        if not named:
            raise bad_request(
                "With the admin key, name the key in 'virtualKey'", code="missing_field", param="virtualKey"
            )
        key = virtual_keys.find_active_key(db(), named)
        if key is None:
            raise bad_request("Unknown or revoked virtualKey", code="invalid_api_key", param="virtualKey")
    else:
        key = virtual_keys.find_active_key(db(), token or "")
        if key is None:
            raise unauthorized()
        if named and named != token:
            raise forbidden("A virtual key may only save provider keys for itself", "not_your_key")
    fields = {name: value for name, value in data.items() if name in _SAVE_FIELDS}
    reject_unknown(data, set(_SAVE_SCHEMA["properties"]))
    if not fields:
        raise bad_request("Nothing to save: send openaiKey, mistralKey and/or anthropicKey", code="missing_field")
    for field, value in fields.items():
        if value is not None and not isinstance(value, str):
            raise bad_request(f"'{field}' must be a string", param=field)
    for field, value in fields.items():
        provider = provider_config.get_provider(db(), _SAVE_FIELDS[field])
        save_credential(
            db(),
            api_key_id=key.id,
            provider=provider,
            secret=value or "",
            encryption_key=resources().settings.encryption_key,
        )
    db().flush()
    return jsonify({"message": "Keys saved", "key_id": key.id, "saved_providers": saved_providers(db(), key.id)})
