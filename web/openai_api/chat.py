"""POST /v1/chat/completions: validate, then wait for the job (web.openai_api.waiting) or store it (respond-async)."""

from __future__ import annotations

from flask import Blueprint, Response, request

from llmproxy import json_schema as js
from llmproxy.chat.stream_assembly import CHAT_COMPLETION_SCHEMA
from llmproxy.chat.validation import chat_request_schema, validate_chat_request, wants_usage_chunk
from llmproxy.operations import Operation
from web.auth import current_key, require_client
from web.context import db
from web.jsonbody import json_body
from web.openai_api.prefer import parse_prefer
from web.openai_api.sse import ChatChunks
from web.openai_api.waiting import STORED_REPLY, WAITING_HEADERS, first_of, price_chain, respond_async, serve_waiting
from web.openapi.operation import Auth, Reply, operation

bp = Blueprint("completions", __name__)
bp.before_request(require_client)


@bp.post("/v1/chat/completions")
@bp.post("/chat/completions")
@operation(
    auth=Auth.KEY,
    body=chat_request_schema(),
    headers=WAITING_HEADERS,
    replies={
        200: Reply(
            "The chat completion; with `stream: true`, server-sent `chat.completion.chunk` events.",
            {"application/json": CHAT_COMPLETION_SCHEMA, "text/event-stream": js.string()},
            {"x-request-id": "The job that served the request."},
        ),
        202: STORED_REPLY,
    },
)
def chat_completions() -> Response:
    """OpenAI's chat completions, served through the queue (streamed or not)."""
    key = current_key()
    body = json_body()
    prefer = parse_prefer(request.headers.get("Prefer", ""))
    if "respond-async" in prefer:
        return respond_async(body, operation=Operation.CHAT)
    chain = price_chain(body)
    validate_chat_request(db(), key, body, lookup=first_of(chain))
    return serve_waiting(
        key,
        body,
        chain,
        prefer,
        operation=Operation.CHAT,
        stream=ChatChunks(wants_usage_chunk(body)) if body.get("stream") else None,
    )
