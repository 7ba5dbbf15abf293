"""The APIs a job can serve: chat completions, embeddings and responses, each with its URL, checks and token estimate.

A job's `operation` says which one its request is for; web, batches and workers ask this module instead of
branching on it themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from sqlalchemy.orm import Session

from llmproxy.catalog.model_access import Model
from llmproxy.chat.tokens import estimate_request
from llmproxy.chat.validation import validate_chat_request
from llmproxy.embeddings.tokens import estimate_embedding
from llmproxy.embeddings.validation import validate_embedding_request
from llmproxy.errors import bad_request
from llmproxy.jsontypes import JSON
from llmproxy.keys.virtual_keys import KeyInfo
from llmproxy.responses.running import RESPONSES
from llmproxy.responses.to_chat import HISTORY, to_chat
from llmproxy.responses.validation import validate_response_request
from llmproxy.storage.models import ApiKey


class Operation(StrEnum):
    """What a request asks for."""

    CHAT = "chat"
    EMBEDDINGS = "embeddings"
    RESPONSES = RESPONSES  # OpenAI's Responses API, served by chat models through llmproxy.responses

    @property
    def url(self) -> str:
        """The OpenAI path of this API (a batch's `endpoint`, a batch line's `url`)."""
        return _URLS[self]


_URLS = {
    Operation.CHAT: "/v1/chat/completions",
    Operation.EMBEDDINGS: "/v1/embeddings",
    Operation.RESPONSES: "/v1/responses",
}
OPERATION_OF_URL = {url: operation for operation, url in _URLS.items()}


def validate_request(
    operation: str,
    session: Session,
    key: ApiKey | KeyInfo,
    body: JSON,
    *,
    lookup: Callable[[str], Model | None] | None = None,
) -> Model:
    """Check a request for `operation` as OpenAI would, and that the key may use its model; return the model."""
    if operation == Operation.EMBEDDINGS:
        return validate_embedding_request(session, key, body, lookup=lookup)
    if operation == Operation.RESPONSES:
        if body.get("previous_response_id") and HISTORY not in body:
            # Only POST /v1/responses reads the stored conversation (llmproxy.jobs.response_history).
            raise bad_request(
                "'previous_response_id' is only served by POST /v1/responses; send the conversation as input items",
                param="previous_response_id",
            )
        return validate_response_request(session, key, body, lookup=lookup)
    return validate_chat_request(session, key, body, lookup=lookup)


def estimate_tokens(operation: str, body: JSON, *, default_max_tokens: int) -> tuple[int, int]:
    """(prompt tokens, most completion tokens) a request for `operation` can be billed."""
    if operation == Operation.EMBEDDINGS:
        return estimate_embedding(body)
    if operation == Operation.RESPONSES:
        body = to_chat(body)  # what is sent, with the conversation it continues
    return estimate_request(body, default_max_tokens=default_max_tokens)
