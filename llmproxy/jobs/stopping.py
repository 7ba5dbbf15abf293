"""When a running job stops early: its caller cancelled it or went away, or its key was revoked or may no
longer use its model (llmproxy.keys.key_state). Both are read in one MGET, at most every few tenths of
a second; a job stopped by its key fails with the key's refusal and is billed for what it used."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import cast

import redis

from llmproxy.errors import ApiError
from llmproxy.jobs import events
from llmproxy.jobs.outcome import Outcome
from llmproxy.jobs.states import JobStatus
from llmproxy.keys import key_state
from llmproxy.storage.models import Job


class StopCheck:
    """A running job's `should_stop()`: starts from the cancel flag as its claim read it, then reads the flag
    and its key's state mark again at most every `every` seconds; once it says stop, it stays so."""

    def __init__(self, client: redis.Redis, job: Job, *, every: float, cancel_asked: bool) -> None:
        self._client, self._job, self._every = client, job, every
        self._keys = [events.cancel_key(job.id), key_state.state_key(job.api_key_id)]
        self._last = time.monotonic()
        self.stopped = cancel_asked
        self.refusal: ApiError | None = None  # set when the key, not the caller, stopped it

    def __call__(self) -> bool:
        now = time.monotonic()
        if not self.stopped and now - self._last >= self._every:
            self._last = now
            cancel, mark = cast(list[bytes | None], self._client.mget(self._keys))
            self.refusal = key_state.refusal_from_mark(mark, self._job.model)
            self.stopped = bool(cancel) or self.refusal is not None
        return self.stopped

    def sleep(self, sleep: Callable[[float], None]) -> Callable[[float], None]:
        """`sleep` cut into slices of `every`, ending early once the job must stop (a long retry backoff)."""

        def nap(seconds: float) -> None:
            end = time.monotonic() + seconds
            while (left := end - time.monotonic()) > 0 and not self():
                sleep(min(left, self._every))

        return nap

    def outcome(self, outcome: Outcome) -> Outcome:
        """The run's outcome as the stop makes it: a job its key stopped fails with the key's refusal,
        keeping what it used (billed)."""
        if self.refusal is None or outcome.status != JobStatus.CANCELLED:
            return outcome
        error = self.refusal.body()["error"]
        return dataclasses.replace(outcome, status=JobStatus.FAILED, error=error, error_status=self.refusal.status)
