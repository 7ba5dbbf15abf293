"""The one error type that reaches the HTTP edge, and the one builder of OpenAI's error objects.

Every error dict the gateway writes — an HTTP error body, a job's `error`, a stream's error event —
comes from `error_object()` (the inner object) or `error_body()` (wrapped as `{"error": …}`).
"""

from __future__ import annotations

from typing import Any

from llmproxy import json_schema as js

# What `error_object` builds (a job's stored error may carry more members, e.g. the attempts it made).
ERROR_OBJECT_SCHEMA = js.obj(
    {
        "message": js.string(),
        "type": js.string(),
        "param": js.nullable(js.string()),
        "code": js.nullable(js.string()),
    },
    required=["message", "type", "param", "code"],
)
ERROR_SCHEMA = js.obj({"error": ERROR_OBJECT_SCHEMA}, required=["error"], extra=False)


def error_object(
    message: str, *, type: str = "invalid_request_error", code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """OpenAI's error object: message, type, param and code."""
    return {"message": message, "type": type, "param": param, "code": code}


def error_body(
    message: str, *, type: str = "invalid_request_error", code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """OpenAI's error body: `{"error": <error object>}`."""
    return {"error": error_object(message, type=type, code=code, param=param)}


class ApiError(Exception):
    """An error with an HTTP status and OpenAI's type/code; `web.errors` renders it."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """OpenAI's error body."""
        return error_body(self.message, type=self.type, code=self.code, param=self.param)


def bad_request(message: str, *, code: str = "invalid_request", param: str | None = None) -> ApiError:
    """400 invalid_request_error."""
    return ApiError(400, message, code=code, param=param)


def not_found(what: str = "resource") -> ApiError:
    """404 for an unknown id or one that belongs to someone else."""
    return ApiError(404, f"No such {what}", code="not_found")


def unauthorized(message: str = "Invalid API key provided") -> ApiError:
    """401 invalid_api_key."""
    return ApiError(401, message, type="authentication_error", code="invalid_api_key")


def forbidden(message: str, code: str) -> ApiError:
    """403 permission_error."""
    return ApiError(403, message, type="permission_error", code=code)


def dependency_unavailable(what: str) -> ApiError:
    """503 when Redis or the database does not answer."""
    return ApiError(
        503,
        f"{what} is unavailable; nothing was done, try again",
        type="service_unavailable",
        code="dependency_unavailable",
    )
