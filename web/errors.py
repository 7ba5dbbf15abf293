"""The one place errors become HTTP responses: OpenAI's error body for every failure."""

from __future__ import annotations

import logging

import redis
from flask import Flask, jsonify
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

from llmproxy.errors import ApiError, dependency_unavailable

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "invalid_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    415: "unsupported_media_type",
}


def to_api_error(exc: BaseException) -> ApiError:
    """Map any exception to the one error type."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, HTTPException):
        status = exc.code or 500
        message = {
            404: "Not found",
            405: "Method not allowed",
            413: "Request body is larger than the configured limit",
        }.get(status, exc.description or exc.name)
        return ApiError(status, message, code=_HTTP_CODES.get(status, "http_error"))
    if isinstance(exc, redis.RedisError):
        log.warning("Redis failed: %s", exc.__class__.__name__, exc_info=exc)
        return dependency_unavailable("Redis")
    if isinstance(exc, (OperationalError, InterfaceError)):
        log.warning("database failed: %s", exc.__class__.__name__, exc_info=exc)
        return dependency_unavailable("The database")
    log.exception("unhandled error", exc_info=exc)
    return ApiError(500, "Internal server error", type="server_error", code="internal_error")


def render(exc: BaseException):
    """Response for an exception: OpenAI's error body, status and any headers the error carries."""
    err = to_api_error(exc)
    response = jsonify(err.body())
    response.status_code = err.status
    for name, value in err.headers.items():
        response.headers[name] = value
    return response


def init_app(app: Flask) -> None:
    """Route every exception through `render`."""
    app.register_error_handler(Exception, render)
