"""From upstream failures to the taxonomy: HTTP error responses, transport exceptions, Retry-After.

Every adapter funnels its failures through :func:`error_from_response` and
:func:`error_from_exception`, and scrubs its key from them with :func:`redact_error`.
"""

from __future__ import annotations

import datetime
import email.utils
import json
import re
import time
from collections.abc import Mapping
from typing import Any, TypedDict

import urllib3.exceptions

from llmproxy.jsontypes import JSON
from llmproxy.providers.errors import (
    ProviderAuthFailed,
    ProviderBadRequest,
    ProviderConnectionError,
    ProviderContextTooLong,
    ProviderError,
    ProviderModelNotFound,
    ProviderRateLimited,
    ProviderStreamBroken,
    ProviderTimeout,
    ProviderUnavailable,
)

_UNAVAILABLE_STATUSES = {408, 500, 502, 503, 504, 529}

_CONTEXT_RE = re.compile(
    r"context[_ ]length|maximum context|context window|too large for model|prompt is too long",
    re.IGNORECASE,
)

_STATUS_WORDS = {
    400: "bad request",
    401: "unauthorized",
    402: "payment required",
    403: "forbidden",
    404: "not found",
    408: "request timeout",
    409: "conflict",
    413: "payload too large",
    422: "unprocessable entity",
    429: "rate limited",
    500: "internal server error",
    502: "bad gateway",
    503: "service unavailable",
    504: "gateway timeout",
    529: "overloaded",
}


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` as seconds or an HTTP-date."""
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    ms = lowered.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000" dates parse naive; HTTP dates are always GMT
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - time.time())


class _ResponseFields(TypedDict):
    """What every error classified from a response carries."""

    status_code: int
    upstream_body: JSON
    provider: str


def _error_fields(body: Any) -> tuple[str, str | None, str | None, Any]:
    """(message, type, code, param) from OpenAI's nested shape or Mistral's flat one."""
    inner = body.get("error") if isinstance(body, dict) else None
    if not isinstance(inner, dict):
        inner = body if isinstance(body, dict) else {}
    message = inner.get("message") or inner.get("detail") or inner.get("error") or ""
    if not isinstance(message, str):
        # Mistral puts validation details (a dict/list) where OpenAI has a string.
        message = json.dumps(message, separators=(",", ":"))
    code, etype = inner.get("code"), inner.get("type")
    return (
        message,
        etype if isinstance(etype, str) else None,
        str(code) if code is not None else None,
        inner.get("param"),
    )


def error_from_response(
    status_code: int,
    headers: Mapping[str, str] | None,
    body_bytes: bytes | None,
    *,
    provider: str = "upstream",
) -> ProviderError:
    """Classify an upstream HTTP error response into the taxonomy."""
    try:
        parsed = json.loads(body_bytes) if body_bytes else None
    except ValueError:
        parsed = None
    message, etype, code, param = _error_fields(parsed)
    if not message and body_bytes and parsed is None:
        message = body_bytes[:200].decode("utf-8", "replace")
    # Callers of the proxy get OpenAI's error shape whatever the upstream's dialect.
    upstream_body: JSON
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        upstream_body = parsed
    else:
        upstream_body = {
            "error": {
                "message": message or _STATUS_WORDS.get(status_code, "error"),
                "type": etype or ("invalid_request_error" if status_code < 500 else "server_error"),
                "param": param,
                "code": code,
            }
        }

    summary = f"{provider}: HTTP {status_code} {_STATUS_WORDS.get(status_code, 'error')}"
    if message:
        summary += f": {message[:300]}"
    kwargs: _ResponseFields = {"status_code": status_code, "upstream_body": upstream_body, "provider": provider}
    retry_after = parse_retry_after(headers)

    if status_code < 400:
        # A redirect means a misconfigured api_base; retrying the same URL cannot help.
        return ProviderUnavailable(summary, retryable=False, fallback_now=True, **kwargs)

    if status_code in {429, 402}:
        if code == "insufficient_quota" or status_code == 402:
            # Out of credit, not out of breath: waiting will not help; try the next model.
            return ProviderRateLimited(summary, retryable=False, fallback_now=True, **kwargs)
        return ProviderRateLimited(summary, retry_after=retry_after, **kwargs)
    if status_code in _UNAVAILABLE_STATUSES or status_code >= 500:
        return ProviderUnavailable(summary, retry_after=retry_after, **kwargs)
    if status_code in (401, 403):
        return ProviderAuthFailed(summary, **kwargs)
    if status_code == 404 or code == "model_not_found":
        return ProviderModelNotFound(summary, **kwargs)
    if status_code in (400, 413, 422) and (code == "context_length_exceeded" or _CONTEXT_RE.search(message or "")):
        return ProviderContextTooLong(summary, **kwargs)
    if 400 <= status_code < 500:
        return ProviderBadRequest(summary, **kwargs)
    return ProviderUnavailable(summary, **kwargs)


def error_from_exception(exc: BaseException, *, provider: str = "upstream", mid_stream: bool = False) -> ProviderError:
    """Classify a transport exception (urllib3's, or the OSError under it; mid_stream: after headers arrived)."""
    name = type(exc).__name__
    if isinstance(exc, urllib3.exceptions.NewConnectionError):  # refused, unreachable, no such host
        return ProviderConnectionError(f"{provider}: connection failed ({name})", provider=provider)
    # urllib3 makes NewConnectionError a ConnectTimeoutError: only after it is this a timeout.
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
        return ProviderTimeout(f"{provider}: timed out connecting", provider=provider)
    if isinstance(exc, (urllib3.exceptions.TimeoutError, TimeoutError)):
        where = "mid-stream" if mid_stream else "waiting for the response"
        return ProviderTimeout(f"{provider}: read timed out {where}", provider=provider)
    if isinstance(exc, (urllib3.exceptions.LocationValueError, urllib3.exceptions.URLSchemeUnknown)):
        # A misconfigured api_base never heals by retrying.
        return ProviderConnectionError(
            f"{provider}: invalid api_base URL ({name})",
            provider=provider,
            retryable=False,
            fallback_now=True,
        )
    if mid_stream:
        return ProviderStreamBroken(f"{provider}: stream dropped ({name})", provider=provider)
    return ProviderConnectionError(f"{provider}: connection failed ({name})", provider=provider)


def _scrub(value: Any, secret: str) -> Any:
    # Walks the JSON an upstream sent back, which may echo the key anywhere.
    if isinstance(value, str):
        return value.replace(secret, "[redacted]")
    if isinstance(value, dict):
        return {k: _scrub(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, secret) for v in value]
    return value


def redact_error(err: ProviderError, secret: str | None) -> ProviderError:
    """Remove the API key from an error's message and body (some upstreams echo it back)."""
    if secret:
        err.message = _scrub(err.message, secret)
        err.args = (err.message,)
        err.upstream_body = _scrub(err.upstream_body, secret)
    return err
