"""Fair use on a real Redis: a key's requests in flight (parallel slots) and its queued jobs, checked atomically."""

from __future__ import annotations

from decimal import Decimal

import pytest

from llmproxy.errors import ApiError
from llmproxy.keys.virtual_keys import KeyInfo
from llmproxy.limits.parallel import Slot, release_slot, take_slot
from llmproxy.limits.queued import admit_submission, forget_queued
from llmproxy.limits.reservations import KeyLimits, limit_keys, release, settle
from tests.integration.limits.test_limits import KEY, T0, admit, run_concurrently, snapshot


def key_info(*, budget: str | None = None, spend: str = "0", max_queued: int | None = None) -> KeyInfo:
    return KeyInfo(
        id=KEY,
        name="fair",
        prefix="sk-fair",
        rpm_limit=None,
        tpm_limit=None,
        budget_usd=None if budget is None else Decimal(budget),
        spend_usd=Decimal(spend),
        allowed_models=None,
        max_queued_jobs=max_queued,
    )


def what(error: ApiError) -> tuple[int, str | None, str | None]:
    return error.status, error.code, error.param


# --- requests in flight ------------------------------------------------------------


def test_parallel_cap_admits_exactly_the_cap_under_concurrency(redis_client):
    lim = KeyLimits(parallel=5)
    results = run_concurrently(redis_client, 30, lambda c, i: admit(c, f"r{i}", lim, None))
    assert sum(r.allowed for r in results) == 5
    refused = [r for r in results if not r.allowed]
    assert {(r.reason, r.retry_after, r.never) for r in refused} == {("parallel_requests", 1.0, False)}
    assert redis_client.zcard(limit_keys(KEY).par) == 5


def test_a_slot_comes_back_when_its_request_ends(redis_client):
    lim = KeyLimits(parallel=1, rpm=100)
    assert admit(redis_client, "a", lim, T0).allowed
    assert admit(redis_client, "b", lim, T0 + 1).reason == "parallel_requests"
    assert settle(redis_client, key_id=KEY, request_id="a", actual_tokens=1, actual_cost_usd=Decimal(0), now=T0 + 2)
    assert admit(redis_client, "b", lim, T0 + 2).allowed
    assert release(redis_client, key_id=KEY, request_id="b", now=T0 + 3)
    assert admit(redis_client, "c", lim, T0 + 3).allowed


def test_a_slot_of_a_dead_web_process_lapses_at_its_deadline(redis_client):
    lim = KeyLimits(parallel=1)
    assert admit(redis_client, "dead", lim, T0, slot_seconds=10).allowed  # never released
    assert admit(redis_client, "x", lim, T0 + 9.9).reason == "parallel_requests"
    assert admit(redis_client, "y", lim, T0 + 10.1).allowed
    assert redis_client.zrange(limit_keys(KEY).par, 0, -1) == [b"y"]


def test_a_refusal_for_parallel_requests_records_nothing(redis_client):
    lim = KeyLimits(parallel=1, rpm=5, tpm=1000, budget_usd=Decimal("1"))
    assert admit(redis_client, "a", lim, T0, tokens=10, cost="0.1").allowed
    before = snapshot(redis_client)
    refused = admit(redis_client, "b", lim, T0 + 1, tokens=10, cost="0.1")
    assert refused.reason == "parallel_requests"
    assert snapshot(redis_client) == before


def test_long_polls_share_the_slots_of_synchronous_requests(redis_client):
    assert admit(redis_client, "sync", KeyLimits(parallel=2), None).allowed
    poll = Slot.for_wait(KEY, "poll_1", 5)
    take_slot(redis_client, poll, 2)
    with pytest.raises(ApiError) as refused:
        take_slot(redis_client, Slot.for_wait(KEY, "poll_2", 5), 2)
    assert what(refused.value) == (429, "rate_limit_exceeded", "parallel_requests")
    assert refused.value.headers["Retry-After"] == "1"
    assert not admit(redis_client, "sync2", KeyLimits(parallel=2), None).allowed
    release_slot(redis_client, poll)
    take_slot(redis_client, Slot.for_wait(KEY, "poll_2", 5), 2)
    assert admit(redis_client, "other-key", KeyLimits(parallel=2), None, key="key_other").allowed


# --- queued jobs at submit ---------------------------------------------------------


def test_queued_jobs_are_capped_and_a_refusal_records_nothing(redis_client, settings):
    key = key_info(max_queued=3)
    admit_submission(redis_client, key=key, job_ids=["j1", "j2"], settings=settings)
    before = snapshot(redis_client)
    with pytest.raises(ApiError) as refused:
        admit_submission(redis_client, key=key, job_ids=["j3", "j4"], settings=settings)  # a batch of 2: all or nothing
    assert what(refused.value) == (429, "rate_limit_exceeded", "queued_jobs")
    assert snapshot(redis_client) == before
    admit_submission(redis_client, key=key, job_ids=["j3"], settings=settings)
    forget_queued(redis_client, KEY, ["j1", "j2"])  # ended or cancelled
    admit_submission(redis_client, key=key, job_ids=["j4", "j5"], settings=settings)
    assert sorted(redis_client.zrange(limit_keys(KEY).queued, 0, -1)) == [b"j3", b"j4", b"j5"]


def test_the_deployment_default_applies_to_keys_without_their_own_cap(redis_client, settings):
    capped, uncapped = settings.with_(default_max_queued_jobs=2), settings.with_(default_max_queued_jobs=None)
    admit_submission(redis_client, key=key_info(), job_ids=["a", "b"], settings=capped)
    with pytest.raises(ApiError):
        admit_submission(redis_client, key=key_info(), job_ids=["c"], settings=capped)
    # Without any cap nothing is counted (and no budget: nothing to check).
    admit_submission(redis_client, key=key_info(), job_ids=["d"], settings=uncapped)
    assert redis_client.zcard(limit_keys(KEY).queued) == 2


def test_a_spent_budget_refuses_at_submit(redis_client, settings):
    with pytest.raises(ApiError) as by_database:
        admit_submission(redis_client, key=key_info(budget="1", spend="1"), job_ids=["a"], settings=settings)
    assert what(by_database.value) == (429, "insufficient_quota", None)
    assert "Retry-After" not in by_database.value.headers
    # Spend settled in Redis and not yet in the database (the writer's lag) counts too.
    redis_client.set(limit_keys(KEY).spent, 10**9)  # $1 in nano-dollars
    with pytest.raises(ApiError):
        admit_submission(redis_client, key=key_info(budget="1", spend="0.5"), job_ids=["b"], settings=settings)
    assert redis_client.zcard(limit_keys(KEY).queued) == 0
    admit_submission(redis_client, key=key_info(budget="2", spend="0.5"), job_ids=["c"], settings=settings)
    assert redis_client.zcard(limit_keys(KEY).queued) == 1
