"""Connections a web process holds: database, Redis and the task producer, created lazily."""

from __future__ import annotations

import threading

import redis
from flask import current_app

from llmproxy.catalog.snapshots import Snapshots
from llmproxy.config import Settings
from llmproxy.storage.engine import make_engine, make_session_factory


class Services:
    """Per-app connections; built on first use so that creating an app connects to nothing."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._engine = None
        self._session_factory = None
        self._redis = None
        self._celery = None
        self._counters = None
        self.snapshots = Snapshots(settings.catalog_ttl_seconds)

    @property
    def session_factory(self):
        """SQLAlchemy session factory."""
        if self._session_factory is None:
            with self._lock:
                if self._session_factory is None:
                    self._engine = make_engine(self.settings.database_url)
                    self._session_factory = make_session_factory(self._engine)
        return self._session_factory

    @property
    def redis(self) -> redis.Redis:
        """Shared Redis client (thread-safe connection pool)."""
        if self._redis is None:
            with self._lock:
                if self._redis is None:
                    if not self.settings.redis_url:
                        raise RuntimeError("REDIS_URL is not set")
                    # socket_timeout must exceed channels.MAX_BLOCK_MS, the longest blocking read.
                    self._redis = redis.Redis.from_url(
                        self.settings.redis_url,
                        socket_connect_timeout=2,
                        socket_timeout=10,
                        health_check_interval=30,
                        max_connections=256,
                    )
        return self._redis

    @property
    def counters(self):
        """This process's metric counters, sent to Redis once a second (and before each scrape)."""
        if self._counters is None:
            from llmproxy.ops.metrics import Counters

            client = self.redis  # outside the lock: the redis property takes it too
            with self._lock:
                if self._counters is None:
                    self._counters = Counters(client)
        return self._counters

    @property
    def celery(self):
        """A Celery producer for sending tasks by name (the web never imports the worker)."""
        if self._celery is None:
            with self._lock:
                if self._celery is None:
                    from celery import Celery

                    from llmproxy.jobs.queues import celery_config

                    app = Celery("llmproxy-web", set_as_current=False)
                    app.conf.update(celery_config(self.settings))
                    self._celery = app
        return self._celery


def services() -> Services:
    """The current app's services."""
    return current_app.extensions["llmproxy"]


def announce_config_change() -> None:
    """Commit this request's change, then tell every process to drop its snapshots."""
    import logging

    from llmproxy.catalog.snapshots import bump_version
    from web.session import commit

    commit()
    try:
        bump_version(services().redis)
    except redis.RedisError:  # the change is stored; other processes see it when their snapshots expire
        logging.getLogger(__name__).warning("could not announce a configuration change", exc_info=True)
