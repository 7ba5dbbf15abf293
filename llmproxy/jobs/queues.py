"""Queue names and the Celery settings shared by the producer (web) and the consumer (worker)."""

from __future__ import annotations

from enum import StrEnum

import redis

from llmproxy.config import Settings
from llmproxy.jsontypes import JSON


class Queue(StrEnum):
    """The two Celery queues: latency first, and throughput first (batch lines and async jobs)."""

    INTERACTIVE = "interactive"
    BATCH = "batch"


RUN_JOB_TASK = "llmproxy.run_job"
DISPATCH_BATCH_TASK = "llmproxy.dispatch_batch"
FINALIZE_BATCH_TASK = "llmproxy.finalize_batch"


def celery_config(settings: Settings) -> JSON:
    """Celery settings: late acks so a killed worker's task is redelivered, one message at a time."""
    return {
        "broker_url": settings.redis_url,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_ignore_result": True,
        "result_backend": None,
        "task_default_queue": Queue.INTERACTIVE.value,
        "broker_connection_retry_on_startup": True,
        # Redelivery of unacked messages after a crash; the job sweeper usually acts first.
        "broker_transport_options": {"visibility_timeout": max(60, int(settings.job_lease_seconds * 4))},
        "task_serializer": "json",
        "accept_content": ["json"],
        "worker_hijack_root_logger": False,
        "broker_pool_limit": 64,
    }


def queue_depth(client: redis.Redis, queue: str) -> int:
    """Messages waiting in a queue (kombu's Redis transport keeps each queue as a list)."""
    return int(client.llen(queue))
