"""Accounting you can audit: over 500 mixed requests, ledger = key total = jobs = recomputed from tokens × prices."""

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import requests
from sqlalchemy import func, select

from llmproxy.billing.cost import Prices, Usage, compute_cost
from llmproxy.devtools.stub_responses import Fail, Ok
from llmproxy.devtools.waiting import wait_for
from llmproxy.storage.models import ApiKey, Job, UsageEntry

ADMIN = {"Authorization": "Bearer admin-test-key-0123456789"}

# One model per kind of request, so the stub's script for each is unambiguous.
MODELS = [
    {"name": "acct-plain", "provider": "openai", "input_cost_per_1m": "0.37", "output_cost_per_1m": "1.13"},
    {"name": "acct-retry", "provider": "openai", "input_cost_per_1m": "2.5", "output_cost_per_1m": "10"},
    {"name": "acct-target", "provider": "mistral", "input_cost_per_1m": "0.15", "output_cost_per_1m": "0.75"},
    {
        "name": "acct-fallback",
        "provider": "openai",
        "input_cost_per_1m": "30",
        "output_cost_per_1m": "60",
        "fallbacks": ["acct-target"],
    },
    {"name": "acct-failed", "provider": "openai", "input_cost_per_1m": "1", "output_cost_per_1m": "1"},
]
PLAN = (
    [("acct-plain", False)] * 150
    + [("acct-plain", True)] * 100
    + [("acct-retry", False)] * 60
    + [("acct-retry", True)] * 40
    + [("acct-fallback", False)] * 50
    + [("acct-fallback", True)] * 50
    + [("acct-failed", False)] * 50
)


def test_ledger_key_total_and_jobs_agree_to_the_last_decimal(client, live, make_key, upstream, worker, db):
    for model in MODELS:
        assert client.post("/admin/models", json=model, headers=ADMIN).status_code == 201
    upstream.script("acct-plain", *[Ok(usage=False)] * 60)  # some without reported usage: counted by us
    upstream.script("acct-retry", *[Fail(500)] * 70, *[Fail(429, retry_after=0)] * 10)
    upstream.script("acct-fallback", *[Fail(401)] * 100)
    upstream.script("acct-failed", *[Fail(503)] * 150)
    secret, key = make_key(name="audit")
    session = requests.Session()

    def call(item):
        model, stream = item
        r = session.post(
            f"{live}/v1/chat/completions",
            stream=stream,
            timeout=60,
            headers={"Authorization": f"Bearer {secret}"},
            json={
                "model": model,
                "stream": stream,
                "max_tokens": 50,
                "messages": [{"role": "user", "content": f"tell me about {model} please"}],
            },
        )
        body = r.text  # drain streams
        return r.status_code, body

    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(call, PLAN))
    assert len(results) == 500
    statuses = [s for s, _ in results]
    assert statuses.count(502) >= 50  # the acct-failed ones at least

    def all_recorded() -> bool:
        with db() as s:
            return s.scalar(select(func.count()).select_from(Job).where(Job.api_key_id == key["id"])) == 500

    wait_for(all_recorded, timeout=30, message="the writer to store all 500 jobs")
    with db() as s:
        rows = s.scalars(select(UsageEntry).where(UsageEntry.api_key_id == key["id"])).all()
        spend = s.scalar(select(ApiKey.spend_usd).where(ApiKey.id == key["id"]))
        job_total = s.scalar(select(func.count()).select_from(Job).where(Job.api_key_id == key["id"]))
        jobs = s.scalars(select(Job).where(Job.api_key_id == key["id"])).all()
        configured = {
            m["name"]: Prices(Decimal(m["input_cost_per_1m"]), Decimal(m["output_cost_per_1m"])) for m in MODELS
        }

    assert job_total == 500
    completed = [j for j in jobs if j.status == "completed"]
    assert len(rows) == len(completed) == sum(1 for st in statuses if st == 200)
    assert {r.job_id for r in rows} == {j.id for j in completed}  # billed once each, failures never
    ledger_sum = sum((r.cost_usd for r in rows), Decimal(0))
    recomputed = sum(
        (
            compute_cost(
                Usage(r.prompt_tokens, r.completion_tokens, r.cached_prompt_tokens), configured[r.model_served]
            )
            for r in rows
        ),
        Decimal(0),
    )
    jobs_sum = sum((j.cost_usd for j in completed), Decimal(0))
    assert ledger_sum == spend == recomputed == jobs_sum
    assert ledger_sum > 0
    for r in rows:  # each row carries what it was priced at, and the served model's prices
        assert (r.input_cost_per_1m, r.output_cost_per_1m) == (
            configured[r.model_served].input_per_1m,
            configured[r.model_served].output_per_1m,
        )
    assert {r.model_served for r in rows if r.model_requested == "acct-fallback"} == {"acct-target"}
    assert any(r.tokens_estimated for r in rows)
    assert any(len(j.attempts) > 1 for j in completed if j.model == "acct-retry")
