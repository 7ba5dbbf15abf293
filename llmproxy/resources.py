"""The one resource factory: what a process (web, worker or CLI) connects to, built from its settings.

Everything is built on first use, so building a `Resources` connects to nothing (an app
factory or `--help` must not need a database), and with one set of options, so the three
kinds of process behave the same against the same Redis and database.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import redis
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from llmproxy.catalog.snapshots import Snapshots, bump_version
from llmproxy.config import Settings
from llmproxy.jobs.lease import LeaseRenewer
from llmproxy.storage.engine import make_engine, make_session_factory
from llmproxy.telemetry.metrics import Counters

T = TypeVar("T")

# socket_timeout must exceed llmproxy.jobs.events.MAX_BLOCK_MS, the longest blocking read.
REDIS_OPTIONS = {
    "socket_connect_timeout": 2,
    "socket_timeout": 10,
    "health_check_interval": 30,
    "max_connections": 256,
}


def redis_client(url: str) -> redis.Redis:
    """A Redis client with the project's one set of options (a thread-safe connection pool)."""
    return redis.Redis.from_url(url, **REDIS_OPTIONS)


class Resources:
    """Engine, session factory, Redis client, config snapshots and metric counters of one process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.snapshots = Snapshots(settings.catalog_ttl_seconds)
        self._lock = threading.RLock()
        self._engine: Engine | None = None
        self._session_factory: sessionmaker[Session] | None = None
        self._redis: redis.Redis | None = None
        self._counters: Counters | None = None
        self._leases: LeaseRenewer | None = None

    def _once(self, attr: str, build: Callable[[], T]) -> T:
        # Double-checked: the hot path reads an attribute; only the first use takes the lock.
        value = getattr(self, attr)
        if value is None:
            with self._lock:
                value = getattr(self, attr)
                if value is None:
                    value = build()
                    setattr(self, attr, value)
        return value  # type: ignore[no-any-return]

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (one pool per process)."""
        return self._once("_engine", lambda: make_engine(self.settings.database_url))

    @property
    def session_factory(self) -> sessionmaker[Session]:
        """Sessions on this process's engine; objects stay readable after commit."""
        return self._once("_session_factory", lambda: make_session_factory(self.engine))

    @property
    def redis(self) -> redis.Redis:
        """The process's Redis client."""
        url = self.settings.redis_url
        if not url:
            raise RuntimeError("REDIS_URL is not set")
        return self._once("_redis", lambda: redis_client(url))

    @property
    def counters(self) -> Counters:
        """This process's metric counters, sent to Redis once a second (and before each scrape)."""
        return self._once("_counters", lambda: Counters(self.redis))

    @property
    def leases(self) -> LeaseRenewer:
        """The process's lease renewer: one thread renews every running job's lease."""
        return self._once(
            "_leases",
            lambda: LeaseRenewer(self.redis, self.settings.job_lease_seconds, self.settings.reservation_ttl_seconds),
        )

    def announce_config_change(self) -> None:
        """Tell every process to drop its config snapshots (a committed change is then seen at once)."""
        bump_version(self.redis)

    def after_fork(self) -> None:
        """Forget connections inherited from a parent process (they must not be shared with it)."""
        with self._lock:
            if self._engine is not None:
                self._engine.dispose(close=False)
            self._engine = self._session_factory = None
            self._redis = None
            self._counters = None
            self._leases = None

    def close(self) -> None:
        """Close the pools (a CLI command or a test is done with them)."""
        with self._lock:
            if self._counters is not None:
                self._counters.close()
            if self._engine is not None:
                self._engine.dispose()
            if self._redis is not None:
                self._redis.close()
            self._engine = self._session_factory = None
            self._redis = None
            self._counters = None
            self._leases = None
