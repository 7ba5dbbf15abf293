"""Fixtures of the jobs tests: the app's own Redis database (the job scripts use fixed key names)."""

from __future__ import annotations

import pytest
import redis as redis_lib


@pytest.fixture
def rds(redis_url):
    """A client on the Redis database the app and its workers use."""
    client = redis_lib.Redis.from_url(redis_url)
    yield client
    client.close()
