"""POST /v1/embeddings: validate, then wait for the job (web.openai_api.waiting) or store it (respond-async)."""

from __future__ import annotations

from flask import Blueprint, Response, request

from llmproxy.embeddings.validation import embedding_request_schema, validate_embedding_request
from llmproxy.operations import Operation
from llmproxy.providers.embedding_answers import EMBEDDING_RESPONSE_SCHEMA
from web.auth import current_key, require_client
from web.context import db
from web.jsonbody import json_body
from web.openai_api.prefer import parse_prefer
from web.openai_api.waiting import STORED_REPLY, WAITING_HEADERS, first_of, price_chain, respond_async, serve_waiting
from web.openapi.operation import Auth, Reply, operation

bp = Blueprint("embeddings", __name__)
bp.before_request(require_client)


@bp.post("/v1/embeddings")
@bp.post("/embeddings")
@operation(
    auth=Auth.KEY,
    body=embedding_request_schema(),
    headers=WAITING_HEADERS,
    replies={
        200: Reply(
            "The embeddings, one per input in order.",
            {"application/json": EMBEDDING_RESPONSE_SCHEMA},
            {"x-request-id": "The job that served the request."},
        ),
        202: STORED_REPLY,
    },
)
def create_embeddings() -> Response:
    """OpenAI's embeddings, served through the queue like chat completions."""
    key = current_key()
    body = json_body()
    prefer = parse_prefer(request.headers.get("Prefer", ""))
    if "respond-async" in prefer:
        return respond_async(body, operation=Operation.EMBEDDINGS)
    chain = price_chain(body)
    validate_embedding_request(db(), key, body, lookup=first_of(chain))
    return serve_waiting(key, body, chain, prefer, operation=Operation.EMBEDDINGS)
