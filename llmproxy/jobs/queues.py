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
RUN_LINES_TASK = "llmproxy.run_lines"  # several batch lines in one message: Celery's cost per message, shared
VALIDATE_BATCH_TASK = "llmproxy.validate_batch"  # check a new batch's input file, then store and send its lines
DISPATCH_BATCH_TASK = "llmproxy.dispatch_batch"
FINALIZE_BATCH_TASK = "llmproxy.finalize_batch"


# kombu's Redis transport keeping its client (see llmproxy.jobs.broker); kombu resolves "module:Class".
BROKER_TRANSPORT = "llmproxy.jobs.broker:Transport"


def celery_config(settings: Settings) -> JSON:
    """Celery settings: late acks so a killed worker's task is redelivered, one message at a time."""
    config: JSON = {
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
    if (settings.redis_url or "").startswith("redis://"):
        # Only the plain scheme: kombu gives rediss:// (TLS defaults) and sentinel URLs transports of their own.
        config["broker_transport"] = BROKER_TRANSPORT
    return config


def queue_depth(client: redis.Redis, queue: str) -> int:
    """Messages waiting in a queue (kombu's Redis transport keeps each queue as a list)."""
    return int(client.llen(queue))


# A message carries up to this many batch lines, run one after the other by one worker thread; but a
# small send is spread over at least MIN_MESSAGES messages, so a few lines still run side by side.
LINES_PER_MESSAGE = 8
MIN_MESSAGES = 16


def line_chunks(job_ids: list[str], *, spread: bool = True) -> list[list[str]]:
    """Split batch lines into the messages that carry them (see LINES_PER_MESSAGE); without `spread`, as few
    messages as possible (lines sent to replace ended ones join a queue already full of work)."""
    if not job_ids:
        return []
    fewest = -(-len(job_ids) // LINES_PER_MESSAGE)
    messages = max(fewest, min(len(job_ids), MIN_MESSAGES)) if spread else fewest
    size, longer = divmod(len(job_ids), messages)  # sizes differ by one at most
    chunks, start = [], 0
    for k in range(messages):
        end = start + size + (1 if k < longer else 0)
        chunks.append(job_ids[start:end])
        start = end
    return chunks
