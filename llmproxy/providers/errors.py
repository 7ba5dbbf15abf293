"""The provider interface, its error taxonomy, the shared HTTP/SSE transport and the registry.

Routing decides on the taxonomy only (``retryable``, ``fallback_now``, ``retry_after``),
never on a provider's raw exception, so every adapter funnels its failures through
:func:`error_from_response` and :func:`error_from_exception`."""

from __future__ import annotations

import datetime
import email.utils
import json
import re
import time
from collections.abc import Mapping
from typing import Any

import requests
import urllib3.exceptions

# ---------------------------------------------------------------------------
# Error taxonomy
# ---------------------------------------------------------------------------


class ProviderError(Exception):
    """A failed upstream call, classified so routing can decide without provider knowledge."""

    outcome = "error"
    retryable = False
    fallback_now = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        retry_after: float | None = None,
        upstream_body: dict | None = None,
        provider: str | None = None,
        retryable: bool | None = None,
        fallback_now: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.retry_after = retry_after
        self.upstream_body = upstream_body
        self.provider = provider
        # Set on errors raised by Provider.stream(): chunks yielded before the failure.
        self.chunks_received = 0
        if retryable is not None:
            self.retryable = retryable
        if fallback_now is not None:
            self.fallback_now = fallback_now

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):
        # Keyword-only constructor args break default exception pickling (Celery pickles errors).
        return (_restore_error, (type(self), dict(self.__dict__)))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe summary for attempt records and logs (no secrets by construction)."""
        return {
            "outcome": self.outcome,
            "status_code": self.status_code,
            "retryable": self.retryable,
            "fallback_now": self.fallback_now,
            "retry_after": self.retry_after,
            "message": self.message,
        }


def _restore_error(cls: type[ProviderError], state: dict) -> ProviderError:
    err = cls.__new__(cls)
    Exception.__init__(err, state.get("message", ""))
    err.__dict__.update(state)
    return err


class ProviderRateLimited(ProviderError):
    """429: back off (honour retry_after) and try again, then fall back."""

    outcome, retryable = "rate_limited", True


class ProviderUnavailable(ProviderError):
    """408/5xx/529 or an unreadable success: the upstream is struggling; retry."""

    outcome, retryable = "unavailable", True


class ProviderTimeout(ProviderError):
    """Connecting, or waiting for the next byte, took longer than the Timeouts allow."""

    outcome, retryable = "timeout", True


class ProviderConnectionError(ProviderError):
    """Refused, reset or dropped before a response arrived."""

    outcome, retryable = "connection_error", True


class ProviderAuthFailed(ProviderError):
    """401/403 (or no key at all): this credential will not work; next model at once."""

    outcome, fallback_now = "auth_failed", True


class ProviderModelNotFound(ProviderError):
    """404 or code model_not_found: this upstream lacks the model; next model at once."""

    outcome, fallback_now = "model_not_found", True


class ProviderContextTooLong(ProviderError):
    """The prompt does not fit this model's window; a fallback with a bigger one may work."""

    outcome, fallback_now = "context_too_long", True


class ProviderBadRequest(ProviderError):
    """Any other 4xx: the caller's fault; routing returns status and upstream_body as they are."""

    outcome = "bad_request"


class ProviderStreamBroken(ProviderError):
    """The stream dropped or sent a malformed event after the response started."""

    outcome, retryable = "stream_broken", True


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
    kwargs = dict(status_code=status_code, upstream_body=upstream_body, provider=provider)
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
    """Classify a `requests`/`urllib3` transport exception (mid_stream: after headers arrived)."""
    # requests wraps a streamed body's ReadTimeoutError in a plain ConnectionError.
    inner = exc.args[0] if exc.args else None
    name = type(exc).__name__
    if isinstance(exc, requests.ConnectTimeout):
        return ProviderTimeout(f"{provider}: timed out connecting", provider=provider)
    if isinstance(exc, (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError)) or (
        isinstance(inner, urllib3.exceptions.ReadTimeoutError)
    ):
        where = "mid-stream" if mid_stream else "waiting for the response"
        return ProviderTimeout(f"{provider}: read timed out {where}", provider=provider)
    if isinstance(
        exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema)
    ):
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
