"""Admission of stored work at submit (async jobs, batch lines): budget left, and room among the key's queued jobs.

RPM and TPM are not checked here: stored work waits for capacity in the workers (llmproxy.jobs.pacing).
What is checked, in one script, is what waiting cannot fix and what would let one key queue without
bound: a spent budget (the same 429 `insufficient_quota` a synchronous request gets) and the key's
max_queued_jobs. Each admitted job is an entry of the key's `queued` sorted set
(llmproxy.limits.reservations) until it ends: its finish script (or a cancel's `release`) removes it,
cancelled batch lines and failed submissions are forgotten here, and an entry a lost path left
behind lapses after `entry_seconds`.
"""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import redis

from llmproxy.config import Settings
from llmproxy.errors import ApiError
from llmproxy.keys.virtual_keys import KeyInfo
from llmproxy.limits.admission import insufficient_quota
from llmproxy.limits.lua import SUBMIT_LUA
from llmproxy.limits.reservations import NANO_PER_USD, limit_keys
from llmproxy.luascript import LuaScript
from llmproxy.storage.models import ApiKey

# An entry outlives any batch's completion window: a job still queued after that stops counting.
ENTRY_MARGIN_SECONDS = 3600.0
FORGET_CHUNK = 1000

_SUBMIT = LuaScript(SUBMIT_LUA)


def queued_cap(key: ApiKey | KeyInfo, settings: Settings) -> int | None:
    """The key's max_queued_jobs, else the deployment's default; None: no cap."""
    return key.max_queued_jobs if key.max_queued_jobs is not None else settings.default_max_queued_jobs


def entry_seconds(settings: Settings) -> float:
    """How long a queued job counts at most."""
    return settings.batch_completion_window_seconds + ENTRY_MARGIN_SECONDS


def admit_submission(client: redis.Redis, *, key: ApiKey | KeyInfo, job_ids: list[str], settings: Settings) -> None:
    """Count these new jobs among the key's queued ones, or raise 429 (budget spent, or too many queued)."""
    cap = queued_cap(key, settings)
    if key.budget_usd is None and cap is None:
        return
    budget = "" if key.budget_usd is None else int((key.budget_usd * NANO_PER_USD).to_integral_value(ROUND_FLOOR))
    spent = int(((key.spend_usd or Decimal(0)) * NANO_PER_USD).to_integral_value(ROUND_CEILING))
    keys = limit_keys(key.id)
    # Counting is needed only under a cap; without one, only the budget is checked and nothing is recorded.
    counted = job_ids if cap is not None else []
    reason, queued = _SUBMIT(
        client,
        [keys.queued, keys.spent],
        ["", budget, spent, "" if cap is None else cap, math.ceil(entry_seconds(settings) * 1000), *counted],
    )
    if reason == 3:
        raise insufficient_quota()
    if reason == 5:
        raise ApiError(
            429,
            f"Too many queued jobs for this key: limit {cap}, {queued} queued, {len(job_ids)} submitted. "
            "Submit more once some have ended.",
            type="rate_limit_error",
            code="rate_limit_exceeded",
            param="queued_jobs",
        )


def forget_queued(client: redis.Redis, key_id: str, job_ids: list[str]) -> None:
    """These jobs no longer count as queued (they were cancelled, failed, or never stored)."""
    queued = limit_keys(key_id).queued
    for start in range(0, len(job_ids), FORGET_CHUNK):
        client.zrem(queued, *job_ids[start : start + FORGET_CHUNK])
