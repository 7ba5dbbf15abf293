"""Refuse U+0000 in the URL before any route reads it: ids, names and cursors from the path and the query
string reach database queries, and PostgreSQL refuses NUL in text (a 500 otherwise)."""

from __future__ import annotations

from flask import request

from llmproxy.errors import bad_request


def refuse_nul_in_url() -> None:
    """An app-wide `before_request`: 400 naming the query parameter (or none for the path) that holds a NUL."""
    if "\x00" in request.path:
        raise bad_request("The URL path must not contain U+0000 (NUL)")
    if b"%00" in request.query_string or b"\x00" in request.query_string:
        for name, value in request.args.items(multi=True):
            if "\x00" in name or "\x00" in value:
                raise bad_request("Query parameters must not contain U+0000 (NUL)", param=name.replace("\x00", ""))
