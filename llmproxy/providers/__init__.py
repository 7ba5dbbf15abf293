"""Upstream providers behind one interface, registered by kind.

Kinds: "openai", "mistral", "openai_compatible".

Use `get_provider(kind)` for the process-wide instance, then `complete()` or `stream()`;
every failure is a `ProviderError` subclass that routing can act on.
"""
from .base import (
    Endpoint,
    Provider,
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
    Timeouts,
    error_from_exception,
    error_from_response,
    get_provider,
    parse_retry_after,
    provider_kinds,
    register,
)
from .mistral import MistralProvider
from .openai import OpenAIProvider
from .openai_compatible import OpenAICompatibleProvider

__all__ = [
    "Endpoint",
    "MistralProvider",
    "OpenAICompatibleProvider",
    "OpenAIProvider",
    "Provider",
    "ProviderAuthFailed",
    "ProviderBadRequest",
    "ProviderConnectionError",
    "ProviderContextTooLong",
    "ProviderError",
    "ProviderModelNotFound",
    "ProviderRateLimited",
    "ProviderStreamBroken",
    "ProviderTimeout",
    "ProviderUnavailable",
    "Timeouts",
    "error_from_exception",
    "error_from_response",
    "get_provider",
    "parse_retry_after",
    "provider_kinds",
    "register",
]
