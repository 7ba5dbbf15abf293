"""Parse a request body as JSON, with OpenAI-style errors (limits: see llmproxy.json_input)."""

from __future__ import annotations

from flask import request

from llmproxy.errors import bad_request
from llmproxy.json_input import JsonInputError, parse_json


def json_body(*, optional: bool = False) -> dict:
    """The body as a JSON object; 400 invalid_json otherwise (too deep, NUL, lone surrogates, NaN included)."""
    raw = request.get_data(cache=True)
    if not raw and optional:
        return {}
    if not raw.strip():  # blank is not a JSON document: only a body that is absent may stand for {}
        raise bad_request("We could not parse the JSON body of your request: the body is empty", code="invalid_json")
    try:
        data = parse_json(raw)
    except JsonInputError as refused:
        raise bad_request(
            f"We could not accept the JSON body of your request: {refused.message}",
            code="invalid_json",
            param=refused.param,
        ) from None
    except ValueError:  # UnicodeDecodeError included
        raise bad_request(
            "We could not parse the JSON body of your request. Send valid JSON.", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise bad_request("The request body must be a JSON object", code="invalid_json")
    return data
