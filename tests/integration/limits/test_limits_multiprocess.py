"""Limits hold across web processes: two gunicorn processes, one Redis, 3×L requests at once."""

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
import requests
from sqlalchemy import select

from llmproxy.chat.tokens import estimate_request
from llmproxy.storage.models import ApiKey, UsageEntry
from tests.support import records
from tests.support.processes import WebProcess

MSG = [{"role": "user", "content": "count me precisely"}]


@pytest.fixture
def webs(env, upstream, worker):
    """Two real web processes (gunicorn, two workers each) sharing the test Redis and database."""
    procs = [WebProcess(env, workers=2), WebProcess(env, workers=2)]
    for p in procs:
        p.start()
    yield [p.url for p in procs]
    for p in procs:
        p.stop()


def fire(urls, secret, count, **body):
    """`count` requests at once from as many threads, alternating between the web processes."""
    payload = {"model": "gpt-3.5-turbo", "messages": MSG, **body}

    def one(i):
        return requests.post(
            f"{urls[i % len(urls)]}/v1/chat/completions",
            json=payload,
            timeout=60,
            headers={"Authorization": f"Bearer {secret}"},
        )

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_rpm_holds_across_processes(webs, make_key):
    limit = 8
    secret, _ = make_key(rpm_limit=limit)
    responses = fire(webs, secret, 3 * limit)
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == limit, statuses
    refused = [r for r in responses if r.status_code == 429]
    assert len(refused) == 2 * limit
    for r in refused:
        assert r.json()["error"]["code"] == "rate_limit_exceeded"
        assert 1 <= int(r.headers["Retry-After"]) <= 60


def test_tpm_holds_across_processes(webs, make_key, upstream, settings):
    limit = 6
    body = {"max_tokens": 50}
    prompt, completion = estimate_request(
        {"model": "gpt-3.5-turbo", "messages": MSG, **body}, default_max_tokens=settings.default_max_tokens
    )
    size = prompt + completion  # what admission reserves per request
    secret, _ = make_key(tpm_limit=size * limit)
    upstream.latency = 1.0  # no request ends (and frees its tokens) while the burst is admitted
    responses = fire(webs, secret, 3 * limit, **body)
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == limit, statuses
    assert all(r.json()["error"]["param"] == "tokens" for r in responses if r.status_code == 429)


def test_budget_holds_under_concurrency(webs, make_key, upstream, db):
    """With max_tokens set, recorded spend never passes the budget; refusals are insufficient_quota."""
    secret, key = make_key(budget_usd="0.0005")
    upstream.latency = 0.2
    responses = fire(webs, secret, 40, max_tokens=100)
    statuses = [r.status_code for r in responses]
    assert 200 in statuses and 429 in statuses
    assert all(r.json()["error"]["code"] == "insufficient_quota" for r in responses if r.status_code == 429)
    for r in responses:
        if r.status_code == 200:
            records.recorded_job(db, r.headers["x-request-id"])
    with db() as s:
        spend = s.scalar(select(ApiKey.spend_usd).where(ApiKey.id == key["id"]))
        ledger = sum(s.scalars(select(UsageEntry.cost_usd)), Decimal(0))
    assert spend == ledger
    assert Decimal(0) < spend <= Decimal("0.0005")
