"""A key's requests in flight (max_parallel_requests): synchronous waits, streams and job long-polls together.

Each request holds a slot in the key's `par` sorted set (llmproxy.limits.reservations), scored by
its deadline. A synchronous request or stream takes it in its admission script (no round trip of
its own) and its job's finish script frees it (none either); a long-poll takes and frees its own.
Whatever exits otherwise (a 202 or 504 after the wait, a disconnect, an exception) frees it
explicitly, and a slot whose web process died lapses at its deadline, purged by the next check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import redis

from llmproxy.config import Settings
from llmproxy.keys.virtual_keys import KeyInfo
from llmproxy.limits.admission import too_many_in_flight
from llmproxy.limits.lua import RENEW_SLOT_LUA, TAKE_SLOT_LUA
from llmproxy.limits.reservations import limit_keys
from llmproxy.luascript import LuaScript
from llmproxy.storage.models import ApiKey

# How much longer than its wait a slot lives: the answer is written, the connection closed.
SLOT_MARGIN_SECONDS = 30.0

_TAKE_SLOT, _RENEW_SLOT = LuaScript(TAKE_SLOT_LUA), LuaScript(RENEW_SLOT_LUA)


def parallel_cap(key: ApiKey | KeyInfo, settings: Settings) -> int | None:
    """The key's max_parallel_requests, else the deployment's default; None: no cap."""
    own = key.max_parallel_requests
    return own if own is not None else settings.default_max_parallel_requests


@dataclass(frozen=True)
class Slot:
    """One request's slot among its key's requests in flight: `seconds` is how long it may hold it unrenewed."""

    key_id: str
    request_id: str
    seconds: float

    @classmethod
    def for_wait(cls, key_id: str, request_id: str, wait: float) -> Slot:
        """The slot of a request that waits up to `wait` seconds."""
        return cls(key_id, request_id, wait + SLOT_MARGIN_SECONDS)


def take_slot(client: redis.Redis, slot: Slot, limit: int) -> None:
    """Take the slot (one script), or raise 429 `parallel_requests` when the key has `limit` in flight."""
    keys = limit_keys(slot.key_id)
    if not _TAKE_SLOT(client, [keys.par], ["", slot.request_id, limit, math.ceil(slot.seconds * 1000)]):
        raise too_many_in_flight(limit)


def release_slot(client: redis.Redis, slot: Slot) -> None:
    """Free the slot (idempotent)."""
    client.zrem(limit_keys(slot.key_id).par, slot.request_id)


def renew_slot(client: redis.Redis, slot: Slot) -> None:
    """Move the slot's deadline `slot.seconds` on (a stream outliving its first one); a freed slot stays free."""
    _RENEW_SLOT(client, [limit_keys(slot.key_id).par], ["", slot.request_id, math.ceil(slot.seconds * 1000)])
