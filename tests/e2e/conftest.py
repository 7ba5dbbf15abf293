"""End-to-end fixtures: the real processes (gunicorn web, Celery workers, beat) on a Redis of their own.

The e2e processes use their own Redis database as broker and hand-off channels. The session's
`worker` fixture (started by other modules, alive until the session ends) consumes the queues of
the main Redis database only, so it can never take an e2e job, whatever order pytest runs the
modules in, and the e2e test decides alone which workers are alive.
"""

from __future__ import annotations

import pytest
import redis as redis_lib

E2E_REDIS_DB = 14  # tests/conftest.py: 15 is the limits scratch database, the URL's own (0) is the app's


def _with_db_index(url: str, index: int) -> str:
    base, _, _tail = url.rpartition("/")
    assert base.startswith("redis://") and base.count("/") >= 2, f"cannot choose a database in {url}"
    return f"{base}/{index}"


@pytest.fixture
def e2e_env(env, redis_url):
    """The session environment, with REDIS_URL on a flushed database used by nothing else."""
    url = _with_db_index(redis_url, E2E_REDIS_DB)
    assert url != redis_url, "the e2e Redis database must differ from the session's"
    client = redis_lib.Redis.from_url(url)
    client.flushdb()
    yield {**env, "REDIS_URL": url}
    client.flushdb()  # the killed worker's unacknowledged message must not outlive the test
    client.close()
