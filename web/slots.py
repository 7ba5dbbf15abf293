"""A web request's slot among its key's requests in flight (llmproxy.limits.parallel), freed on every way out."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from llmproxy.limits.parallel import Slot, release_slot, renew_slot, take_slot
from web.context import resources

log = logging.getLogger(__name__)


def free_slot(slot: Slot | None) -> None:
    """Free the slot now (None: the request holds none); if Redis fails, the slot lapses at its deadline."""
    if slot is None:
        return
    try:
        release_slot(resources().redis, slot)
    except redis.RedisError:
        log.warning("could not free a parallel-request slot of %s; it lapses on its own", slot.key_id)


def renew(slot: Slot) -> None:
    """Keep a long stream's slot (best effort: if Redis fails, the stream's own reads fail too)."""
    try:
        renew_slot(resources().redis, slot)
    except redis.RedisError:
        log.warning("could not renew a parallel-request slot of %s", slot.key_id)


@contextmanager
def slot_held(slot: Slot, limit: int | None) -> Iterator[None]:
    """Hold a slot for the block (429 `parallel_requests` if the key has `limit` in flight; no cap: nothing held)."""
    if limit is None:
        yield
        return
    take_slot(resources().redis, slot, limit)
    try:
        yield
    finally:
        free_slot(slot)
