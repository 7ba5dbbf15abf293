"""Worker heartbeats in Redis: which workers consume which queue, for readiness checks."""

from __future__ import annotations

import time

import redis

HEARTBEAT_TTL = 30


def heartbeat_key(queue: str) -> str:
    """Redis hash of worker name → last heartbeat (unix seconds) for a queue."""
    return f"llmproxy:consumers:{queue}"


def beat(client: redis.Redis, worker_name: str, queues: list[str]) -> None:
    """Record that this worker consumes these queues now."""
    now = time.time()
    pipe = client.pipeline()
    for queue in queues:
        pipe.hset(heartbeat_key(queue), worker_name, now)
        pipe.expire(heartbeat_key(queue), HEARTBEAT_TTL * 4)
    pipe.execute()


def live_consumers(client: redis.Redis, queue: str) -> int:
    """How many workers sent a heartbeat for this queue within the TTL."""
    cutoff = time.time() - HEARTBEAT_TTL
    return sum(1 for ts in client.hvals(heartbeat_key(queue)) if float(ts) >= cutoff)
