"""Whether a request may use the model it names: it exists, is enabled, does what was asked, and the key may use it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from llmproxy.catalog.chains import ChainEntry
from llmproxy.catalog.model_config import find_model
from llmproxy.catalog.modes import CHAT, EMBEDDING
from llmproxy.errors import ApiError, bad_request, forbidden
from llmproxy.jsontypes import JSON
from llmproxy.keys.virtual_keys import KeyInfo
from llmproxy.storage.models import ApiKey, ModelConfig

# What each mode is for, in the words of an error message.
_WHAT = {CHAT: "a chat model: call /v1/chat/completions", EMBEDDING: "an embedding model: call /v1/embeddings"}


# What request validation finds: a catalog row, or the first entry of a cached chain.
Model = ModelConfig | ChainEntry


def catalog_lookup(session: Session) -> Callable[[str], ModelConfig | None]:
    """Find models in the catalog through this session."""
    return lambda name: find_model(session, name)


def model_name(body: JSON) -> str:
    """The body's `model`: 400 when it is missing or not a non-empty string."""
    name: Any = body.get("model")
    if name is None:
        raise bad_request("you must provide a model parameter", code="missing_field", param="model")
    if not isinstance(name, str) or not name:
        raise bad_request("'model' must be a non-empty string", param="model")
    return name


def usable_model(
    key: ApiKey | KeyInfo,
    name: str,
    *,
    mode: str,
    lookup: Callable[[str], Model | None],
) -> Model:
    """The model `name` if this key may use it for `mode` requests; else 400 (unknown, disabled, other mode) or 403.

    `lookup` finds a model by name (`catalog_lookup(session)`, a cached chain's first entry, a batch's memo).
    """
    model = lookup(name)
    if model is None or not model.enabled:
        raise ApiError(
            400,
            f"The model `{name}` does not exist or you do not have access to it.",
            code="model_not_found",
            param="model",
        )
    if model.mode != mode:
        # The shape of "not found" (nothing of this kind by that name), saying what the model is instead.
        what = _WHAT.get(model.mode, f"a {model.mode} model")
        raise ApiError(400, f"The model `{name}` is {what}.", code="model_not_found", param="model")
    if key.allowed_models is not None and name not in key.allowed_models:
        raise forbidden(f"This key may not use the model `{name}`", "model_not_allowed")
    return model
