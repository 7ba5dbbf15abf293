"""What the floor's web and worker share: the queue, the task, the Redis keys and the Celery app."""

from __future__ import annotations

import os

from celery import Celery

QUEUE = "floor"
TASK = "floor.run"
REDIS_ENV = "FLOOR_REDIS_URL"  # the floor's own Redis database (bench/peer_floor.py picks it)
UPSTREAM_ENV = "FLOOR_UPSTREAM_URL"  # the stub's OpenAI-style base URL (…/v1)
WORKERS_KEY = "floor:workers"  # hash: node name -> 1, set by each worker once it consumes
RESULT_TTL_S = 120  # a result nobody waits for any more expires
WAIT_S = 60  # how long the web waits for the worker's answer (or for the next chunk of a stream)
# The last item of a streamed answer. Never a payload: the worker forwards only non-empty `data:` payloads.
END = b""


def result_key(job_id: str) -> str:
    """The Redis list the worker pushes a job's answer (or its stream chunks) to."""
    return f"floor:result:{job_id}"


def env(name: str) -> str:
    """A required setting from the environment; exit with a clear message when it is missing."""
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"bench.floor: {name} is not set (bench/peer_floor.py sets it)")
    return value


def make_celery(redis_url: str) -> Celery:
    """A Celery app configured like the gateway's (llmproxy/jobs/queues.py), on kombu's default Redis transport."""
    app = Celery("floor", set_as_current=False)
    app.conf.update(
        broker_url=redis_url,
        # As the gateway: late acks (a killed worker's task is redelivered), one message at a time per thread,
        # no result backend (the answer goes through a Redis list of its own), JSON only.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_backend=None,
        task_default_queue=QUEUE,
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        broker_pool_limit=64,
    )
    return app
