"""Build the OpenAPI 3.1 document from the app's routes and what each declared (web.openapi.operation)."""

from __future__ import annotations

import re
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

from flask import Flask

from llmproxy.batches.files import DELETED_FILE_SCHEMA, FILE_SCHEMA
from llmproxy.batches.store import BATCH_SCHEMA
from llmproxy.catalog.model_config import MODEL_SCHEMA
from llmproxy.catalog.provider_config import PROVIDER_SCHEMA
from llmproxy.errors import ERROR_SCHEMA
from llmproxy.jobs.serialize import JOB_SCHEMA
from llmproxy.json_schema import Schema
from llmproxy.keys.virtual_keys import KEY_SCHEMA
from web.openapi.operation import JSON_MEDIA, Auth, Operation, declared_operation

# Schemas shown once under components and referred to by name (matched by identity, not by equality).
COMPONENTS: dict[str, Schema] = {
    "Error": ERROR_SCHEMA,
    "Job": JOB_SCHEMA,
    "Batch": BATCH_SCHEMA,
    "File": FILE_SCHEMA,
    "DeletedFile": DELETED_FILE_SCHEMA,
    "ApiKey": KEY_SCHEMA,
    "Provider": PROVIDER_SCHEMA,
    "ModelConfig": MODEL_SCHEMA,
}

_SECURITY_SCHEMES = {
    "virtualKey": {"type": "http", "scheme": "bearer", "description": "A virtual key (`sk-…`) made by an admin."},
    "adminKey": {"type": "http", "scheme": "bearer", "description": "The deployment's ADMIN_API_KEY."},
    "metricsToken": {"type": "http", "scheme": "bearer", "description": "METRICS_TOKEN, when the deployment sets one."},
}
_SECURITY: dict[Auth, list[dict[str, list[str]]]] = {
    Auth.NONE: [],
    Auth.KEY: [{"virtualKey": []}],
    Auth.ADMIN: [{"adminKey": []}],
    Auth.KEY_OR_ADMIN: [{"virtualKey": []}, {"adminKey": []}],
    Auth.METRICS: [{"metricsToken": []}, {}],
}
_ERRORS = {
    "4XX": "Refused: OpenAI's error body, naming the `param` at fault where there is one.",
    "5XX": "A dependency (database, Redis, the provider) failed or timed out: OpenAI's error body.",
}
_RULE_ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
_SKIPPED_METHODS = {"HEAD", "OPTIONS"}
HTML_PAGES = "dashboard."  # the operator's dashboard: HTML pages for a browser, not part of the HTTP API


def build_document(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route of `app`; a route without a declaration is a programming error."""
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static" or rule.endpoint.startswith(HTML_PAGES):
            continue
        view = app.view_functions[rule.endpoint]
        declared = declared_operation(view)
        if declared is None:
            raise LookupError(f"route {rule.rule} ({rule.endpoint}) declares no OpenAPI operation")
        path = _RULE_ARGUMENT.sub(r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - _SKIPPED_METHODS):
            paths.setdefault(path, {})[method.lower()] = _operation(
                method, path, rule.endpoint, view.__doc__ or "", sorted(rule.arguments), declared
            )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "LLM Proxy",
            "version": _version(),
            "description": "An OpenAI-compatible gateway: chat completions served through a queue, jobs, batches, "
            "and the admin API that configures it.",
        },
        "paths": paths,
        "components": {"schemas": COMPONENTS, "securitySchemes": _SECURITY_SCHEMES},
    }


def _operation(
    method: str, path: str, endpoint: str, doc: str, arguments: list[str], declared: Operation
) -> dict[str, Any]:
    summary = doc.strip().splitlines()[0] if doc.strip() else endpoint
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
        for name in arguments
    ]
    parameters += [{"name": name, "in": "query", "schema": _ref(s)} for name, s in declared.query.items()]
    parameters += [{"name": name, "in": "header", "schema": _ref(s)} for name, s in declared.headers.items()]
    responses: dict[str, Any] = {}
    for status, reply in declared.replies.items():
        described: dict[str, Any] = {"description": reply.description}
        if reply.content:
            described["content"] = {media: {"schema": _ref(schema)} for media, schema in reply.content.items()}
        if reply.headers:
            described["headers"] = {
                name: {"description": text, "schema": {"type": "string"}} for name, text in reply.headers.items()
            }
        responses[str(status)] = described
    for statuses, text in _ERRORS.items():
        responses[statuses] = {"description": text, "content": {JSON_MEDIA: {"schema": _ref(ERROR_SCHEMA)}}}
    found: dict[str, Any] = {
        "operationId": re.sub(r"[^A-Za-z0-9]+", "_", f"{method.lower()}{path}").strip("_"),
        "summary": summary,
        "tags": [endpoint.partition(".")[0]],
        "security": _SECURITY[declared.auth],
        "responses": responses,
    }
    if parameters:
        found["parameters"] = parameters
    if declared.body is not None:
        found["requestBody"] = {
            "required": declared.body_required,
            "content": {declared.body_media: {"schema": _ref(declared.body)}},
        }
    return found


@cache
def _version() -> str:
    """The project's version, from pyproject.toml (the one place it is written)."""
    with open(Path(__file__).resolve().parents[2] / "pyproject.toml", "rb") as project:
        return str(tomllib.load(project)["project"]["version"])


def _ref(schema: Schema) -> Schema:
    for name, component in COMPONENTS.items():
        if schema is component:
            return {"$ref": f"#/components/schemas/{name}"}
    return schema
