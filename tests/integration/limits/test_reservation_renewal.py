"""A running job's cost reservation is renewed with its lease (one script for all of a worker's jobs), so it
holds however long the job runs; a lost run's, a settled one and an unheld one are left alone.

On the app's Redis (the lease scripts use fixed key names), in server time, as the worker renews."""

from __future__ import annotations

import secrets
import time
from decimal import Decimal

import pytest

from llmproxy.devtools.waiting import wait_for
from llmproxy.ids import new_job_id
from llmproxy.jobs import live
from llmproxy.jobs.lease import LeaseRenewer
from llmproxy.jobs.live_job import LiveJob
from llmproxy.limits import reservations
from llmproxy.limits.reservations import KeyLimits, limit_keys

LONG = 30.0
FIRST_TTL = 1.0  # what admission gave the reservation: it would lapse after this without renewal
RENEWED_TTL = 600.0
BUDGET = KeyLimits(budget_usd=Decimal("1"))
REQUEST = {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "hi"}]}


def redis_ms(rds) -> int:
    seconds, micros = rds.time()
    return seconds * 1000 + micros // 1000


@pytest.fixture
def running(rds):
    """Make a claimed (running) job of a fresh key holding a 0.6 USD reservation of its 1 USD budget:
    `running(key_id=None)` -> (job id, key id). Everything is removed after the test."""
    made: list[tuple[str, str]] = []

    def make(key_id: str | None = None) -> tuple[str, str]:
        key_id = key_id or f"key_{secrets.token_hex(6)}"
        job = LiveJob(
            new_job_id(), key_id, "gpt-3.5-turbo", "interactive", REQUEST, created_at_ms=int(time.time() * 1000)
        )
        live.create(rds, job, lease_seconds=LONG)
        assert isinstance(live.claim(rds, job.id, lease_seconds=LONG), live.Claim)
        admitted = reservations.reserve(
            rds,
            key_id=key_id,
            request_id=job.id,
            limits=BUDGET,
            tokens=10,
            max_cost_usd=Decimal("0.6"),
            spent_usd=Decimal(0),
            reservation_ttl=FIRST_TTL,
        )
        assert admitted.allowed
        made.append((job.id, key_id))
        return job.id, key_id

    yield make
    for job_id, key_id in made:
        live.discard(rds, job_id)
        rds.delete(*limit_keys(key_id))


def deadline(rds, job_id: str, key_id: str) -> float | None:
    return rds.zscore(limit_keys(key_id).costdl, job_id)


def second_request_admitted(rds, key_id: str) -> bool:
    """Whether another 0.6 USD request of the key fits its 1 USD budget now (it does once the first lapsed)."""
    return reservations.reserve(
        rds,
        key_id=key_id,
        request_id=new_job_id(),
        limits=BUDGET,
        tokens=10,
        max_cost_usd=Decimal("0.6"),
        spent_usd=Decimal(0),
    ).allowed


def test_a_held_runs_reservation_outlives_its_first_deadline_and_still_counts(rds, running):
    job_id, key_id = running()
    first = deadline(rds, job_id, key_id)
    renewer = LeaseRenewer(rds, lease_seconds=LONG, reservation_seconds=RENEWED_TTL)
    with renewer.holding(job_id, 1, key_id=key_id):
        renewer.renew_now()
        renewed = deadline(rds, job_id, key_id)
        assert renewed > redis_ms(rds) + (RENEWED_TTL - 5) * 1000
        keys = limit_keys(key_id)
        for name in (keys.costdl, keys.cost, keys.sums):  # the structures holding it live as long
            assert rds.pttl(name) > (RENEWED_TTL - 5) * 1000, name
        wait_for(lambda: redis_ms(rds) > first, timeout=10, interval=0.01, message="the first deadline to pass")
        assert not second_request_admitted(rds, key_id)  # 0.6 + 0.6 > 1: the first still counts


def test_an_unheld_reservation_lapses_at_its_deadline(rds, running):
    """The control: what renewal prevents (a dead worker's reservation, which must not lock the key out)."""
    job_id, key_id = running()
    first = deadline(rds, job_id, key_id)
    wait_for(lambda: redis_ms(rds) > first, timeout=10, interval=0.01, message="the first deadline to pass")
    assert second_request_admitted(rds, key_id)


def test_one_call_renews_jobs_with_and_without_reservations(rds, running):
    jobs = [running(), running(), running()]
    (a, key_a), (b, _), (c, key_c) = jobs
    before = {job_id: deadline(rds, job_id, key_id) for job_id, key_id in jobs}
    renewer = LeaseRenewer(rds, lease_seconds=LONG, reservation_seconds=RENEWED_TTL)
    renewer.hold(a, 1, key_id=key_a)
    renewer.hold(b, 1)  # held without its key: its lease is renewed, its reservation is not
    renewer.hold(c, 1, key_id=key_c)
    try:
        renewer.renew_now()
    finally:
        for job_id, _ in jobs:
            renewer.release(job_id)
    now = redis_ms(rds)
    for job_id in (a, b, c):
        assert int(rds.hget(live.live_key(job_id), "lease")) > now + (LONG - 5) * 1000
    assert deadline(rds, a, key_a) > now + (RENEWED_TTL - 5) * 1000
    assert deadline(rds, c, key_c) > now + (RENEWED_TTL - 5) * 1000
    assert deadline(rds, b, jobs[1][1]) == before[b]


def test_a_settled_reservation_and_a_lost_runs_are_not_renewed(rds, running):
    settled, settled_key = running()
    lost, lost_key = running()
    assert reservations.settle(
        rds, key_id=settled_key, request_id=settled, actual_tokens=5, actual_cost_usd=Decimal("0.1")
    )
    rds.hset(live.live_key(lost), "run", 2)  # another run took the job over
    lost_deadline = deadline(rds, lost, lost_key)
    renewer = LeaseRenewer(rds, lease_seconds=LONG, reservation_seconds=RENEWED_TTL)
    renewer.hold(settled, 1, key_id=settled_key)
    renewer.hold(lost, 1, key_id=lost_key)
    try:
        renewer.renew_now()
    finally:
        renewer.release(settled)
        renewer.release(lost)
    assert deadline(rds, settled, settled_key) is None  # settled stays settled: nothing is revived
    assert rds.hget(limit_keys(settled_key).cost, settled) is None
    assert deadline(rds, lost, lost_key) == lost_deadline  # the new run's renewer renews it, not this one
