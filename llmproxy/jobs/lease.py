"""A running job's lease (llmproxy.jobs.live): renewed in the background so the sweeper knows the run is alive."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from llmproxy.jobs.live import LEASES_KEY, LIVE_TTL_SECONDS, live_key
from llmproxy.jobs.live_lua import RENEW_LUA
from llmproxy.jobs.timing import ms
from llmproxy.luascript import LuaScript

log = logging.getLogger(__name__)
_RENEW = LuaScript(RENEW_LUA)


class LeaseRenewer:
    """One thread per process renews the leases of every run in progress, in one script call per round."""

    def __init__(self, client: redis.Redis, lease_seconds: float) -> None:
        self._client = client
        self._lease = lease_seconds
        self._runs: dict[str, int] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def hold(self, job_id: str, run: int) -> None:
        """Keep renewing this run's lease until `release`."""
        with self._lock:
            self._runs[job_id] = run
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="lease-renewer", daemon=True)
                self._thread.start()

    def release(self, job_id: str) -> None:
        """Stop renewing (the run ended)."""
        with self._lock:
            self._runs.pop(job_id, None)

    @contextmanager
    def holding(self, job_id: str, run: int) -> Iterator[None]:
        """Renew this run's lease for the duration of the block."""
        self.hold(job_id, run)
        try:
            yield
        finally:
            self.release(job_id)

    def renew_now(self) -> None:
        """One round: extend every held lease; drop the runs that are no longer ours."""
        with self._lock:
            runs = list(self._runs.items())
        if not runs:
            return
        reply = _RENEW(
            self._client,
            [LEASES_KEY, *(live_key(job_id) for job_id, _ in runs)],
            [ms(self._lease), ms(LIVE_TTL_SECONDS), *(v for job_id, run in runs for v in (job_id, run))],
        )
        with self._lock:
            for (job_id, run), ours in zip(runs, reply, strict=True):
                if not ours and self._runs.get(job_id) == run:
                    log.warning("job %s run %d lost its lease; another run may take it over", job_id, run)
                    self._runs.pop(job_id, None)

    def _loop(self) -> None:
        while True:
            time.sleep(self._lease / 3)
            try:
                self.renew_now()
            except redis.RedisError:
                log.warning("could not renew job leases", exc_info=True)
