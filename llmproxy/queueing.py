"""Queue names, Celery settings shared by producer (web) and consumer (worker), and worker heartbeats."""
from __future__ import annotations

import time

import redis

from llmproxy.config import Settings

INTERACTIVE = "interactive"
BATCH = "batch"
QUEUES = (INTERACTIVE, BATCH)
RUN_JOB_TASK = "llmproxy.run_job"
HEARTBEAT_TTL = 30


def celery_config(settings: Settings) -> dict:
    """Celery settings: late acks so a killed worker's task is redelivered, one message at a time."""
    return {
        "broker_url": settings.redis_url,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_ignore_result": True,
        "result_backend": None,
        "task_default_queue": INTERACTIVE,
        "broker_connection_retry_on_startup": True,
        # Redelivery of unacked messages after a crash; the job sweeper usually acts first.
        "broker_transport_options": {"visibility_timeout": max(60, int(settings.job_lease_seconds * 4))},
        "task_serializer": "json",
        "accept_content": ["json"],
        "worker_hijack_root_logger": False,
        "broker_pool_limit": 64,
    }


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


def queue_depth(client: redis.Redis, queue: str) -> int:
    """Messages waiting in a queue (kombu's Redis transport keeps each queue as a list)."""
    return int(client.llen(queue))
