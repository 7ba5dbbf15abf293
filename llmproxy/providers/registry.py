"""The registry of adapters by kind, and one shared instance of each per process.

The adapters register themselves when :mod:`llmproxy.providers` is imported.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TypeVar

from llmproxy.providers.contract import Provider

_P = TypeVar("_P", bound=Provider)

_CLASSES: dict[str, type[Provider]] = {}

_INSTANCES: dict[tuple[str, int], Provider] = {}

_LOCK = threading.Lock()


def register(kind: str) -> Callable[[type[_P]], type[_P]]:
    """Class decorator: make a Provider subclass available under `kind`."""

    def decorate(cls: type[_P]) -> type[_P]:
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
