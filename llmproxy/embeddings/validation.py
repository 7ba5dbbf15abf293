"""Validation of embedding requests (`POST /v1/embeddings`) before anything is stored, billed or enqueued.

`input` is a string, a list of strings, one token array or a list of token arrays, as OpenAI takes it:
never empty, at most MAX_INPUTS items. Fields not checked here pass through to the provider.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from llmproxy import json_schema as js
from llmproxy.catalog.model_access import Model, catalog_lookup, model_name, usable_model
from llmproxy.catalog.modes import EMBEDDING
from llmproxy.chat.shape_checks import check_str, invalid, is_int, missing
from llmproxy.errors import bad_request
from llmproxy.jsontypes import JSON
from llmproxy.keys.virtual_keys import KeyInfo
from llmproxy.storage.models import ApiKey

MAX_INPUTS = 2048  # OpenAI's bound on the items of one request
MAX_TOKEN_ID = 2**31 - 1
MAX_DIMENSIONS = 65_536  # far beyond any model's; the provider refuses what its model cannot do
ENCODING_FORMATS = ("float", "base64")

_TOKENS = js.array(js.integer(0, MAX_TOKEN_ID), min_items=1)
INPUT_SCHEMA = js.one_of(
    js.string(minLength=1),
    js.array(js.string(minLength=1), min_items=1, max_items=MAX_INPUTS),
    _TOKENS,
    js.array(_TOKENS, min_items=1, max_items=MAX_INPUTS),
)


def _is_tokens(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(is_int(t) and 0 <= t <= MAX_TOKEN_ID for t in value)


@js.describes(INPUT_SCHEMA)
def check_input(value: Any, param: str = "input") -> None:
    """A non-empty string, or 1..MAX_INPUTS non-empty strings, or token arrays (one, or a list of them)."""
    if value is None:
        raise missing(param)
    if isinstance(value, str):
        if not value:
            raise bad_request(f"'{param}' must not be an empty string", param=param)
        return
    if not isinstance(value, list) or not value:
        raise invalid(param, "a non-empty string, or a non-empty array of strings or of token arrays")
    if len(value) > MAX_INPUTS:
        raise bad_request(f"'{param}' has {len(value)} items; at most {MAX_INPUTS} are allowed", param=param)
    if all(is_int(item) for item in value):
        if not _is_tokens(value):
            raise invalid(param, f"token ids from 0 to {MAX_TOKEN_ID}")
        return
    for index, item in enumerate(value):
        if isinstance(item, str):
            if not item:
                raise bad_request(f"'{param}[{index}]' must not be an empty string", param=f"{param}[{index}]")
        elif not _is_tokens(item):
            raise invalid(
                f"{param}[{index}]", f"a non-empty string or a non-empty array of token ids (0 to {MAX_TOKEN_ID})"
            )
    if len({isinstance(item, str) for item in value}) > 1:
        raise invalid(param, "strings or token arrays, not both")


@js.describes(js.integer(1, MAX_DIMENSIONS))
def _dimensions(value: Any, param: str) -> None:
    if not is_int(value) or not 1 <= value <= MAX_DIMENSIONS:
        raise invalid(param, f"a positive integer of at most {MAX_DIMENSIONS}")


@js.describes(js.enum(ENCODING_FORMATS))
def _encoding_format(value: Any, param: str) -> None:
    if value not in ENCODING_FORMATS:
        raise invalid(param, "'float' or 'base64'")


_FIELDS = {"dimensions": _dimensions, "encoding_format": _encoding_format, "user": check_str}


def embedding_request_schema() -> js.Schema:
    """The schema of an embeddings body, assembled from the checks above (other members pass through)."""
    properties = {
        "model": js.string(minLength=1),
        "input": INPUT_SCHEMA,
        **{name: js.nullable(js.schema_of(check)) for name, check in _FIELDS.items()},
    }
    return js.obj(properties, required=["model", "input"])


def validate_embedding_request(
    session: Session, key: ApiKey | KeyInfo, body: JSON, *, lookup: Callable[[str], Model | None] | None = None
) -> Model:
    """Check the body as OpenAI would and that this key may use its model for embeddings; return the model."""
    name = model_name(body)
    check_input(body.get("input"))
    for field_name, check in _FIELDS.items():
        value = body.get(field_name)
        if value is not None:
            check(value, field_name)
    if body.get("stream"):
        raise bad_request("Embeddings cannot be streamed", param="stream")
    return usable_model(key, name, mode=EMBEDDING, lookup=lookup or catalog_lookup(session))
