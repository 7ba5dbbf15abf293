"""Validation of chat-completion requests before anything is stored or enqueued."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from llmproxy.catalog.chains import ChainEntry
from llmproxy.catalog.model_config import find_model
from llmproxy.errors import ApiError, bad_request, forbidden
from llmproxy.jsontypes import JSON
from llmproxy.keys.virtual_keys import KeyInfo
from llmproxy.storage.models import ApiKey, ModelConfig

# What a `lookup` may answer with: a catalog row, or the first entry of a cached chain.
Model = ModelConfig | ChainEntry

_ROLES = {"system", "user", "assistant", "tool", "function", "developer"}


def validate_chat_request(
    session: Session, key: ApiKey | KeyInfo, body: JSON, *, lookup: Callable[[str], Model | None] | None = None
) -> Model:
    """Check the body as OpenAI would and that this key may use its model; return the model.

    `lookup` replaces the catalog query (a batch validates thousands of lines against a few models).
    """
    model_name = body.get("model")
    if model_name is None:
        raise bad_request("you must provide a model parameter", code="missing_field", param="model")
    if not isinstance(model_name, str) or not model_name:
        raise bad_request("'model' must be a non-empty string", param="model")
    messages = body.get("messages")
    if messages is None:
        raise bad_request("Missing required parameter: 'messages'", code="missing_field", param="messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' must be a non-empty array", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise bad_request(f"messages[{i}] must be an object with a valid 'role'", param=f"messages[{i}]")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise bad_request("'stream' must be a boolean", param="stream")
    for name in ("max_tokens", "max_completion_tokens", "n"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise bad_request(f"'{name}' must be a positive integer", param=name)
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise bad_request("'stream_options' must be an object", param="stream_options")
    model = lookup(model_name) if lookup is not None else find_model(session, model_name)
    if model is None or not model.enabled:
        raise ApiError(
            400,
            f"The model `{model_name}` does not exist or you do not have access to it.",
            code="model_not_found",
            param="model",
        )
    if key.allowed_models is not None and model_name not in key.allowed_models:
        raise forbidden(f"This key may not use the model `{model_name}`", "model_not_allowed")
    return model


def wants_usage_chunk(body: JSON) -> bool:
    """Whether a streaming caller asked for the final usage chunk."""
    options = body.get("stream_options") or {}
    return bool(options.get("include_usage"))
