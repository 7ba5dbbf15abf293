"""Routing among a model's deployments through the real queue and the stub upstream: a deployment that answers 429
is cooled down (shared in Redis) and the caller never sees it; weights share the calls."""

from __future__ import annotations

import json
import re

from llmproxy.devtools.stub_responses import Fail, Ok
from llmproxy.devtools.waiting import wait_for
from tests.support import records

MESSAGES = [{"role": "user", "content": "Say hello to the proxy"}]
MODEL = "gpt-3.5-turbo"


def chat(client, secret):
    return client.post(
        "/v1/chat/completions",
        json={"model": MODEL, "messages": MESSAGES},
        headers={"Authorization": f"Bearer {secret}"},
    )


def two_deployments(client, admin_headers, *, first_weight: int, second_weight: int) -> tuple[dict, dict]:
    """The model's own deployment as upstream 'dep-a' and a second one, 'dep-b', on the same stub provider."""
    [first] = client.get(f"/admin/models/{MODEL}/deployments", headers=admin_headers).json["data"]
    patched = client.patch(
        f"/admin/models/{MODEL}/deployments/{first['id']}",
        json={"upstream_model": "dep-a", "weight": first_weight},
        headers=admin_headers,
    )
    assert patched.status_code == 200, patched.json
    second = client.post(
        f"/admin/models/{MODEL}/deployments",
        json={"provider": "openai", "upstream_model": "dep-b", "weight": second_weight},
        headers=admin_headers,
    )
    assert second.status_code == 201, second.json
    return patched.json, second.json


def where(deployment: dict) -> str:
    """The labels naming a deployment of MODEL in /metrics."""
    return f'model="{MODEL}",deployment="{deployment["id"]}",provider="openai"'


def attempts_metric(deployment: dict, outcome: str) -> str:
    return f'llmproxy_deployment_attempts_total{{{where(deployment)},outcome="{outcome}"}}'


def scrape(client) -> str:
    return client.get("/metrics").get_data(as_text=True)


def value(text: str, series: str) -> float:
    """The value of one series in a scrape (0 when it is not there yet)."""
    found = re.search(rf"^{re.escape(series)} ([0-9.e+-]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def calls(stub, upstream_model: str) -> int:
    return len(stub.chat_bodies(upstream_model))


def test_a_rate_limited_deployment_cools_down_and_callers_see_no_error(
    client, admin_headers, make_key, upstream, worker
):
    secret, _ = make_key()
    bad, good = two_deployments(client, admin_headers, first_weight=1, second_weight=1)
    text = scrape(client)
    before = {
        series: value(text, series) for series in (attempts_metric(good, "ok"), attempts_metric(bad, "rate_limited"))
    }
    # Always rate limited; its Retry-After (10 s) is its cooldown, shared by every worker through Redis.
    upstream.script("dep-a", *[Fail(429, retry_after=10)] * 500)

    answers = [chat(client, secret) for _ in range(120)]

    assert [r.status_code for r in answers] == [200] * 120, next(r.json for r in answers if r.status_code != 200)
    assert all(r.json["model"] == MODEL for r in answers)
    assert calls(upstream, "dep-b") == 120
    attempts = calls(upstream, "dep-a") + calls(upstream, "dep-b")
    # The first 429 cools it down; after that it is tried again only each time its cooldown has passed.
    assert calls(upstream, "dep-a") - 1 <= 0.05 * attempts, (calls(upstream, "dep-a"), attempts)

    # /metrics shows each deployment's traffic and health (workers send their counts once a second: poll).
    # Counters live in Redis for good, and a fresh database may give the same ids again: compare with before.
    ok, limited = (attempts_metric(good, "ok"), attempts_metric(bad, "rate_limited"))
    text = wait_for(
        lambda: (t := scrape(client)) and value(t, ok) == before[ok] + 120 and t,
        timeout=10,
        message="the deployments' metrics",
    )
    assert value(text, limited) == before[limited] + calls(upstream, "dep-a")
    assert 0 < value(text, f"llmproxy_deployment_cooldown_seconds{{{where(bad)}}}") <= 10
    assert value(text, f"llmproxy_deployment_cooldown_seconds{{{where(good)}}}") == 0
    assert value(text, f"llmproxy_deployment_enabled{{{where(bad)}}}") == 1


def test_weights_three_to_one_share_the_calls(client, admin_headers, make_key, upstream, worker):
    secret, _ = make_key()
    two_deployments(client, admin_headers, first_weight=3, second_weight=1)

    answers = [chat(client, secret) for _ in range(400)]

    assert all(r.status_code == 200 for r in answers)
    share = calls(upstream, "dep-a") / 400
    # Weighted turns are counted in Redis, not drawn at random: the share is exact over any 4 calls in a row.
    assert abs(share - 0.75) <= 0.05, share
    assert calls(upstream, "dep-a") + calls(upstream, "dep-b") == 400


def test_a_stream_moves_to_another_deployment_before_its_first_chunk(
    client, admin_headers, make_key, upstream, worker, db
):
    secret, _ = make_key()
    first, second = two_deployments(client, admin_headers, first_weight=1000, second_weight=1)
    upstream.script("dep-a", Fail(503))
    upstream.script("dep-b", Ok(content="from b"))

    r = client.post(
        "/v1/chat/completions",
        json={"model": MODEL, "messages": MESSAGES, "stream": True},
        headers={"Authorization": f"Bearer {secret}"},
    )

    assert r.status_code == 200 and r.mimetype == "text/event-stream"
    events = [line[len("data: ") :] for line in r.get_data(as_text=True).split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == "from b"
    job = records.recorded_job(db, r.headers["x-request-id"])
    assert [(a["deployment"], a["outcome"]) for a in job.attempts] == [
        (first["id"], "unavailable"),
        (second["id"], "ok"),
    ]
    assert records.recorded_ledger(db, job.id).deployment_id == second["id"]
