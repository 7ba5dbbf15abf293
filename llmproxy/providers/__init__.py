"""Upstream providers behind one interface, registered by kind.

Kinds: "openai", "mistral", "anthropic", "openai_compatible".

Use `get_provider(kind)` for the process-wide instance, then `complete()` or `stream()`;
every failure is a `ProviderError` subclass that routing can act on.
"""

from llmproxy.providers.anthropic import AnthropicProvider
from llmproxy.providers.contract import Endpoint, Provider, Timeouts
from llmproxy.providers.error_mapping import error_from_exception, error_from_response, parse_retry_after
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
from llmproxy.providers.mistral import MistralProvider
from llmproxy.providers.openai import OpenAIProvider
from llmproxy.providers.openai_compatible import OpenAICompatibleProvider
from llmproxy.providers.registry import get_provider, provider_kinds, register

__all__ = [
    "AnthropicProvider",
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
