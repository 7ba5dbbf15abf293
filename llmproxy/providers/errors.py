"""The provider error taxonomy: every failed upstream call is one of these classes.

Routing decides on the taxonomy only (``retryable``, ``fallback_now``, ``retry_after``),
never on a provider's raw exception; :mod:`llmproxy.providers.error_mapping` turns HTTP
error responses and transport exceptions into it.
"""

from __future__ import annotations

from llmproxy.jsontypes import JSON


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
        upstream_body: JSON | None = None,
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
