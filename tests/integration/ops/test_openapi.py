"""/openapi.json: a valid OpenAPI 3.1 document of every route, built from the schemas the code checks with."""

from __future__ import annotations

import pytest
import schemathesis
from flask import Flask

from llmproxy.catalog.model_config import MODEL_BODY
from llmproxy.chat import validation as chat_validation
from llmproxy.keys.virtual_keys import KEY_BODY
from web.openapi.document import build_document
from web.openapi.operation import Auth, json_reply, operation


def test_the_document_is_public_valid_openapi_3_1_and_covers_every_route(client, app):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json
    assert document["openapi"] == "3.1.0"
    schemathesis.openapi.from_dict(document).validate()  # against the OpenAPI 3.1 meta-schema

    routes = {
        (method.lower(), rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static" and not rule.endpoint.startswith("dashboard.")  # HTML pages, not the API
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {
        (method, path.replace("{", "<").replace("}", ">"))
        for path, item in document["paths"].items()
        for method in item
    }
    # Flask writes `<path:name>` where the document has `{name}`.
    assert {(m, r.replace("<path:", "<")) for m, r in routes} == documented
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def test_each_operation_names_its_credentials_and_its_error_shape(client):
    document = client.get("/openapi.json").json
    paths = document["paths"]
    assert paths["/admin/keys"]["post"]["security"] == [{"adminKey": []}]
    assert paths["/v1/chat/completions"]["post"]["security"] == [{"virtualKey": []}]
    assert paths["/healthz"]["get"]["security"] == []
    for item in paths.values():
        for op in item.values():
            assert op["responses"]["4XX"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"
            }


def test_request_bodies_are_the_validators_own_schemas(client):
    paths = client.get("/openapi.json").json["paths"]
    chat = paths["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert chat == chat_validation.chat_request_schema()
    assert set(chat["properties"]) == {"model", "messages", "stream", *chat_validation._FIELDS}
    assert chat["properties"]["n"] == {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 128}, {"type": "null"}]}

    key_body = paths["/admin/keys"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(key_body["properties"]) == set(KEY_BODY.fields) and key_body["additionalProperties"] is False
    create_model = paths["/admin/models"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    update_model = paths["/admin/models/{name}"]["patch"]["requestBody"]["content"]["application/json"]["schema"]
    assert create_model["required"] == ["name", "provider"] and "required" not in update_model
    assert set(update_model["properties"]) == set(MODEL_BODY.fields) - {"name"}
    # A price cannot be unset: null is refused by the code, and the document says so.
    assert update_model["properties"]["input_cost_per_1m"]["anyOf"][0]["type"] == "number"
    assert {"type": "null"} not in update_model["properties"]["input_cost_per_1m"]["anyOf"]


def test_a_route_that_declares_nothing_cannot_be_left_out():
    app = Flask("sample")

    @app.get("/declared")
    @operation(auth=Auth.NONE, replies={200: json_reply("Yes.", {"type": "object"})})
    def declared():
        """A declared route."""

    assert "/declared" in build_document(app)["paths"]

    @app.get("/forgotten")
    def forgotten():
        """Nobody declared this one."""

    with pytest.raises(LookupError, match="/forgotten"):
        build_document(app)
