"""A Lua script run by its SHA1 (EVALSHA), loaded into Redis only when the server does not know it yet."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import redis
from redis.exceptions import NoScriptError


class LuaScript:
    """One script, hashed once per process (redis-py's register_script hashes it on every call)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def __call__(self, client: redis.Redis, keys: Sequence[str], args: Sequence[str | int | float]) -> Any:
        """Run the script: one round trip, or two the first time a server sees it (after a restart too)."""
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            client.script_load(self.source)
            return client.evalsha(self.sha, len(keys), *keys, *args)
