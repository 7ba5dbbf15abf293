"""Per-process snapshots of configuration that every request reads, never more than a second old.

Reading the key, the model chain and the caller's credentials costs several
queries per request. Each process keeps what it read for CATALOG_TTL_SECONDS
(1 s by default, the promise of API.md) and drops everything at once when the
configuration version in Redis moves: the admin API, the compatibility routes
and the CLI bump it after every change they commit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar, cast

import redis

VERSION_KEY = "llmproxy:config:version"

_T = TypeVar("_T")


def bump_version(client: redis.Redis) -> None:
    """Tell every process that configuration changed (call after the change is committed)."""
    client.incr(VERSION_KEY)


class Snapshots:
    """A small thread-safe cache whose entries live `ttl` seconds and die with the config version."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._version: bytes | str | None = None
        self._entries: dict[Hashable, tuple[float, Any]] = {}

    def sync(self, client: redis.Redis) -> None:
        """Check the config version once per request or job; a change empties the cache."""
        if self.ttl <= 0:
            return
        try:
            version = client.get(VERSION_KEY)
        except redis.RedisError:
            version = None  # cannot tell: start from the database
            self._entries.clear()
        self.observe(version)

    def observe(self, version: bytes | str | None) -> None:
        """The configuration version as another call read it (a job's claim does): a change empties the cache."""
        if self.ttl <= 0:
            return
        if version != self._version:
            with self._lock:
                self._entries.clear()
                self._version = version

    def get(self, name: Hashable, load: Callable[[], _T]) -> _T:
        """The cached value for `name`, else `load()` cached until the TTL or the next version."""
        if self.ttl <= 0:
            return load()
        now = time.monotonic()
        entry = self._entries.get(name)
        if entry is not None and entry[0] > now:
            return cast(_T, entry[1])  # each name is always loaded by the same kind of `load`
        value = load()
        with self._lock:
            if len(self._entries) > 10_000:  # bounded: unknown keys must not grow it forever
                self._entries.clear()
            self._entries[name] = (now + self.ttl, value)
        return value
