"""Parse a request body as JSON, with OpenAI-style errors."""

from __future__ import annotations

import json

from flask import request

from llmproxy.errors import bad_request


def json_body(*, optional: bool = False) -> dict:
    """The body as a JSON object; 400 invalid_json otherwise."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        if optional:
            return {}
        raise bad_request("We could not parse the JSON body of your request: the body is empty", code="invalid_json")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise bad_request(
            "We could not parse the JSON body of your request. Send valid JSON.", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise bad_request("The request body must be a JSON object", code="invalid_json")
    return data
