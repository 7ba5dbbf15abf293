"""A running job's lease (llmproxy.jobs.live): renewed in the background so the sweeper knows the run is alive.

The same call renews the job's cost reservation (llmproxy.limits.reservations), so a long stream or a slow
upstream never outlives what it reserved of its key's budget; only a dead worker's reservation lapses, after
RESERVATION_TTL_SECONDS without renewal (by then the sweeper's re-run has taken it over, or it settled).
"""

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
from llmproxy.limits.reservations import DEFAULT_RESERVATION_TTL, limit_keys
from llmproxy.luascript import LuaScript

log = logging.getLogger(__name__)
_RENEW = LuaScript(RENEW_LUA)


class LeaseRenewer:
    """One thread per process renews the leases of every run in progress, in one script call per round."""

    def __init__(
        self, client: redis.Redis, lease_seconds: float, reservation_seconds: float = DEFAULT_RESERVATION_TTL
    ) -> None:
        self._client = client
        self._lease = lease_seconds
        self._reservation = reservation_seconds
        self._runs: dict[str, tuple[int, str | None]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def hold(self, job_id: str, run: int, key_id: str | None = None) -> None:
        """Keep renewing this run's lease until `release`, and the cost reservation it holds on `key_id`'s limits."""
        with self._lock:
            self._runs[job_id] = (run, key_id)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="lease-renewer", daemon=True)
                self._thread.start()

    def release(self, job_id: str) -> None:
        """Stop renewing (the run ended)."""
        with self._lock:
            self._runs.pop(job_id, None)

    @contextmanager
    def holding(self, job_id: str, run: int, key_id: str | None = None) -> Iterator[None]:
        """Renew this run's lease (and its reservation on `key_id`'s limits) for the duration of the block."""
        self.hold(job_id, run, key_id)
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
        keys = [LEASES_KEY]
        args: list[str | int] = [ms(self._lease), ms(LIVE_TTL_SECONDS), ms(self._reservation)]
        for job_id, (run, key_id) in runs:
            keys.append(live_key(job_id))
            if key_id is not None:
                limits = limit_keys(key_id)
                keys += [limits.costdl, limits.cost, limits.sums]
            args += [job_id, run, 0 if key_id is None else 1]
        reply = _RENEW(self._client, keys, args)
        with self._lock:
            for (job_id, held), ours in zip(runs, reply, strict=True):
                if not ours and self._runs.get(job_id) == held:
                    log.warning("job %s run %d lost its lease; another run may take it over", job_id, held[0])
                    self._runs.pop(job_id, None)

    def _loop(self) -> None:
        while True:
            time.sleep(self._lease / 3)
            try:
                self.renew_now()
            except redis.RedisError:
                log.warning("could not renew job leases", exc_info=True)
