"""The provider interface, its error taxonomy, the shared HTTP/SSE transport and the registry.

Routing decides on the taxonomy only (``retryable``, ``fallback_now``, ``retry_after``),
never on a provider's raw exception, so every adapter funnels its failures through
:func:`error_from_response` and :func:`error_from_exception`."""

from __future__ import annotations

import os
import threading

from llmproxy.providers.contract import Provider

# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------

_CLASSES: dict[str, type[Provider]] = {}

_INSTANCES: dict[tuple[str, int], Provider] = {}

_LOCK = threading.Lock()


def register(kind: str):
    """Class decorator: make a Provider subclass available under `kind`."""

    def decorate(cls: type[Provider]) -> type[Provider]:
        cls.kind = kind
        _CLASSES[kind] = cls
        return cls

    return decorate


def get_provider(kind: str) -> Provider:
    """The shared instance for `kind` in this process (KeyError for an unknown kind)."""
    # Keyed by pid: pooled sockets inherited across a fork (Celery prefork) must not be shared.
    key = (kind, os.getpid())
    provider = _INSTANCES.get(key)
    if provider is None:
        with _LOCK:
            provider = _INSTANCES.get(key)
            if provider is None:
                provider = _CLASSES[kind]()
                _INSTANCES[key] = provider
    return provider


def provider_kinds() -> list[str]:
    """The registered kinds, sorted."""
    return sorted(_CLASSES)
