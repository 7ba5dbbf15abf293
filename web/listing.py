"""Query parameters and body of OpenAI-style list responses."""

from __future__ import annotations

from flask import jsonify, request

from llmproxy.errors import bad_request


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
