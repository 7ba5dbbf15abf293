"""Query parameters and body of OpenAI-style list responses."""

from __future__ import annotations

from flask import jsonify, request

from llmproxy import json_schema as js
from llmproxy.errors import bad_request


def list_schema(item: js.Schema) -> js.Schema:
    """The schema of `list_response`'s body for items of this schema."""
    return js.record(
        {
            "object": js.const("list"),
            "data": js.array(item),
            "first_id": js.nullable(js.string()),
            "last_id": js.nullable(js.string()),
            "has_more": js.BOOLEAN,
        }
    )


def limit_schema(maximum: int = 100) -> js.Schema:
    """The schema of what `limit_param` accepts."""
    return js.integer(1, maximum)


def limit_param(default: int = 20, maximum: int = 100) -> int:
    """?limit=, an integer from 1 to `maximum`."""
    try:
        limit = int(request.args.get("limit", default))
    except ValueError:
        limit = -1
    if not 1 <= limit <= maximum:
        raise bad_request(f"'limit' must be an integer from 1 to {maximum}", param="limit")
    return limit


def list_response(data: list[dict], has_more: bool, *, last_id: str | None = None):
    """OpenAI's list object with its cursors (`last_id` when the page read further than the rows it shows)."""
    return jsonify(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": last_id or (data[-1]["id"] if data else None),
            "has_more": has_more,
        }
    )
