"""A budget holds for the real worst case, however requests are shaped and however long they run.

Real web (over HTTP), real workers and Redis, the stub upstream. The stub "fills" each answer: it reports
the whole output cap it was sent (times `n`) as completion tokens, and `UNCAPPED_FILL` when it was sent
none, as a model that talks until stopped would. So a reservation that misses anything (`n`, the cap the
upstream must get when the caller set none, the dearest model of the chain, a stream outliving its
reservation) shows as spend past the budget. Ledger = key total = recomputed cost, once per job.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from decimal import ROUND_FLOOR, Decimal

import pytest
import requests

from llmproxy.chat.tokens import count_prompt_tokens, count_text_tokens, estimate_request
from llmproxy.devtools.stub_responses import BreakStream, Fail, Ok
from llmproxy.devtools.waiting import wait_for
from llmproxy.limits import reservations
from llmproxy.limits.reservations import KeyLimits, limit_keys
from llmproxy.storage.models import UsageEntry
from tests.support import records
from tests.support.processes import LiveServer

ADMIN = {"Authorization": "Bearer admin-test-key-0123456789"}
PRICES = {"wc-main": ("1", "2"), "wc-cheap": ("0.1", "0.2"), "wc-dear": ("3", "6")}
MODELS = [
    {"name": "wc-main", "provider": "openai"},
    {"name": "wc-dear", "provider": "mistral"},
    {"name": "wc-cheap", "provider": "openai", "fallbacks": ["wc-dear"]},
]
MSG = [{"role": "user", "content": "write me a very long story please"}]
PARALLEL = 20
ADMITTED = 3  # the budget is 3.5 worst cases


@pytest.fixture
def models(client, upstream):
    for model in MODELS:
        price_in, price_out = PRICES[model["name"]]
        fields = {**model, "input_cost_per_1m": price_in, "output_cost_per_1m": price_out}
        assert client.post("/admin/models", json=fields, headers=ADMIN).status_code == 201
    return upstream


def auth(secret):
    return {"Authorization": f"Bearer {secret}"}


def worst_case(body: dict, model: str, settings) -> tuple[int, Decimal]:
    """(prompt tokens, worst-case cost) of `body` served by `model` at the whole cap the upstream gets."""
    prompt, completion = estimate_request(body, default_max_tokens=settings.default_max_tokens)
    price_in, price_out = PRICES[model]
    return prompt, records.cost(prompt, completion, price_in, price_out)


def budget_for(cost: Decimal) -> str:
    return str((cost * Decimal("3.5")).quantize(Decimal("1e-9"), rounding=ROUND_FLOOR))


def fire(url: str, secret: str, body: dict, count: int = PARALLEL) -> list[requests.Response]:
    """`count` requests at once, each read to its end (a stream too)."""

    def one(_):
        response = requests.post(f"{url}/v1/chat/completions", json=body, headers=auth(secret), timeout=60)
        response.content  # noqa: B018 - drain a stream
        return response

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def ledger_of(db, key_id: str) -> list[UsageEntry]:
    return [row for row in records.ledger(db) if row.api_key_id == key_id]


def assert_billed_once_within(db, key_id: str, budget: str, job_ids: list[str]) -> list[UsageEntry]:
    """Every admitted job is billed once; ledger = key total = recomputed from tokens × served prices <= budget."""
    rows = wait_for(
        lambda: (found := ledger_of(db, key_id)) and len(found) >= len(job_ids) and found,
        timeout=30,
        message="the admitted requests' ledger rows",
    )
    assert sorted(r.job_id for r in rows) == sorted(job_ids)
    recomputed = sum(
        (records.cost(r.prompt_tokens, r.completion_tokens, *PRICES[r.model_served]) for r in rows), Decimal(0)
    )
    total = sum((r.cost_usd for r in rows), Decimal(0))
    assert total == records.key_spend(db, key_id) == recomputed
    assert total <= Decimal(budget)
    return rows


BODIES = {
    "max_tokens": {"model": "wc-main", "messages": MSG, "max_tokens": 300},
    "no_max_tokens": {"model": "wc-main", "messages": MSG},
    "n": {"model": "wc-main", "messages": MSG, "n": 3, "max_tokens": 200},
    "n_without_max_tokens": {"model": "wc-main", "messages": MSG, "n": 2},
    "stream_without_max_tokens": {"model": "wc-main", "messages": MSG, "stream": True},
    "stream_n": {"model": "wc-main", "messages": MSG, "stream": True, "n": 2, "max_completion_tokens": 250},
}


@pytest.mark.parametrize("shape", BODIES)
def test_the_budget_holds_for_the_worst_case_of_parallel_requests(shape, live, make_key, models, worker, db, settings):
    body = BODIES[shape]
    prompt, cost = worst_case(body, "wc-main", settings)
    budget = budget_for(cost)
    secret, key = make_key(name=f"worst-{shape}", budget_usd=budget)
    models.script("wc-main", *[Ok(fill=True, prompt_tokens=prompt)] * PARALLEL)

    responses = fire(live, secret, body)

    served = [r for r in responses if r.status_code == 200]
    assert len(served) == ADMITTED, [r.status_code for r in responses]
    refused = [r for r in responses if r.status_code != 200]
    assert all(r.status_code == 429 and r.json()["error"]["code"] == "insufficient_quota" for r in refused)
    rows = assert_billed_once_within(db, key["id"], budget, [r.headers["x-request-id"] for r in served])
    assert all(r.cost_usd == cost for r in rows)  # the worst case happened, and was what was reserved
    # The upstream got the cap the reservation counted: the caller's, else DEFAULT_MAX_TOKENS, as
    # max_completion_tokens for an OpenAI provider; the stored request stays the caller's.
    sent = models.chat_bodies("wc-main")
    assert len(sent) == ADMITTED
    own = body.get("max_completion_tokens") or body.get("max_tokens")
    for upstream_body in sent:
        assert upstream_body.get("max_completion_tokens", upstream_body.get("max_tokens")) == (
            own or settings.default_max_tokens
        )
    assert records.job(db, served[0].headers["x-request-id"]).request == body


def test_the_reservation_covers_the_dearest_model_of_the_chain(live, make_key, models, worker, db, settings):
    """wc-cheap falls back to wc-dear (Mistral, twenty times the price): each request reserves wc-dear's worst case."""
    body = {"model": "wc-cheap", "messages": MSG}
    prompt, cost = worst_case(body, "wc-dear", settings)
    budget = budget_for(cost)
    secret, key = make_key(name="worst-chain", budget_usd=budget)
    models.script("wc-cheap", *[Fail(401)] * PARALLEL)  # its credential is refused: on to the fallback
    models.script("wc-dear", *[Ok(fill=True, prompt_tokens=prompt)] * PARALLEL)

    responses = fire(live, secret, body)

    served = [r for r in responses if r.status_code == 200]
    assert len(served) == ADMITTED, [r.status_code for r in responses]
    rows = assert_billed_once_within(db, key["id"], budget, [r.headers["x-request-id"] for r in served])
    assert {r.model_served for r in rows} == {"wc-dear"} and all(r.cost_usd == cost for r in rows)
    assert all(b["max_tokens"] == settings.default_max_tokens for b in models.chat_bodies("wc-dear"))


def test_cut_streams_are_billed_within_the_budget(live, make_key, models, worker, db, settings):
    body = {"model": "wc-main", "messages": MSG, "stream": True, "max_tokens": 400}
    _, cost = worst_case(body, "wc-main", settings)
    budget = budget_for(cost)
    secret, key = make_key(name="worst-cut", budget_usd=budget)
    args = json.dumps({"story": " ".join(f"word{i}" for i in range(60))})
    models.script("wc-main", *[BreakStream(6, tool_calls=[{"name": "write", "arguments": args}])] * PARALLEL)

    responses = fire(live, secret, body)

    served = [r for r in responses if r.status_code == 200]
    assert len(served) >= ADMITTED  # each settles below its reservation: later ones may fit
    assert all("stream_interrupted" in r.text for r in served)
    rows = assert_billed_once_within(db, key["id"], budget, [r.headers["x-request-id"] for r in served])
    assert all(r.tokens_estimated and r.outcome == "failed" and r.completion_tokens > 0 for r in rows)


def test_a_cut_stream_with_tool_calls_is_billed_for_their_arguments(client, make_key, models, worker, db):
    secret, key = make_key(name="cut-tools")
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
    body = {"model": "wc-main", "messages": MSG, "stream": True, "tools": tools}
    args = json.dumps({"city": "Paris", "days": [f"day {i}" for i in range(40)], "unit": "celsius"})
    pieces = len(re.findall(r"\S+\s*", args))
    # role chunk, the call's name, every piece of its arguments: then the connection drops (no usage, no finish)
    models.script("wc-main", BreakStream(2 + pieces, tool_calls=[{"name": "weather", "arguments": args}]))

    r = client.post("/v1/chat/completions", json=body, headers=auth(secret))

    assert "stream_interrupted" in r.get_data(as_text=True)
    row = records.recorded_ledger(db, r.headers["x-request-id"])
    assert row.tokens_estimated and row.outcome == "failed"
    assert row.completion_tokens == count_text_tokens("weather", "wc-main") + count_text_tokens(args, "wc-main")
    tool_text = json.dumps(tools, separators=(",", ":"))
    assert row.prompt_tokens == count_prompt_tokens(MSG, "wc-main") + count_text_tokens(tool_text, "wc-main")
    assert row.cost_usd == records.cost(row.prompt_tokens, row.completion_tokens, *PRICES["wc-main"])
    assert records.key_spend(db, key["id"]) == row.cost_usd


TTL_AT_ADMISSION = 4.0


def redis_ms(rds) -> int:
    seconds, micros = rds.time()
    return seconds * 1000 + micros // 1000


def test_a_stream_outliving_its_first_reservation_still_holds_it(settings, make_key, models, worker, rds, db):
    """Reservations given 4 s at admission; the streams run past that (paused by the stub until the test is
    done): their workers renew them with their leases, so a second wave finds the budget still taken."""
    from web import create_app

    body = {"model": "wc-main", "messages": MSG, "stream": True, "max_tokens": 100}
    prompt, cost = worst_case(body, "wc-main", settings)
    budget = budget_for(cost)
    secret, key = make_key(name="worst-long", budget_usd=budget)
    models.script("wc-main", *[Ok(fill=True, prompt_tokens=prompt, pause_after=2)] * PARALLEL)
    app = create_app(settings.with_(reservation_ttl_seconds=TTL_AT_ADMISSION))
    with LiveServer(app) as server, ThreadPoolExecutor(2 * PARALLEL) as pool:

        def open_one(_):  # returns once the first chunk (or a refusal) has arrived
            return requests.post(
                f"{server.url}/v1/chat/completions", json=body, headers=auth(secret), stream=True, timeout=60
            )

        first_wave = list(pool.map(open_one, range(PARALLEL)))
        first_deadline = redis_ms(rds) + TTL_AT_ADMISSION * 1000  # every admission happened before now
        try:
            streams = [r for r in first_wave if r.status_code == 200]
            assert len(streams) == ADMITTED, [r.status_code for r in first_wave]
            job_ids = [r.headers["x-request-id"] for r in streams]
            costdl = limit_keys(key["id"]).costdl
            wait_for(
                lambda: redis_ms(rds) > first_deadline + 500,
                timeout=30,
                message="the reservations' first deadline to pass",
            )
            now = redis_ms(rds)
            for job_id in job_ids:
                assert (rds.zscore(costdl, job_id) or 0) > now, "a running stream's reservation lapsed"
            second_wave = list(pool.map(open_one, range(PARALLEL)))
            assert {r.status_code for r in second_wave} == {429}
            assert {r.json()["error"]["code"] for r in second_wave} == {"insufficient_quota"}
        finally:
            models.resume()
            for r in first_wave:
                r.content  # noqa: B018 - read each stream to its end
    assert all(r.text.rstrip().endswith("data: [DONE]") for r in streams)
    rows = assert_billed_once_within(db, key["id"], budget, job_ids)
    assert all(r.cost_usd == cost for r in rows)


PRICED_APART = [
    ("service_tier", "priority"),
    ("service_tier", "flex"),
    ("modalities", ["text", "audio"]),
    ("audio", {"voice": "alloy", "format": "wav"}),
    ("prediction", {"type": "content", "content": "a draft"}),
    ("web_search_options", {}),
]


@pytest.mark.parametrize("param, value", PRICED_APART)
def test_an_option_priced_apart_is_refused_and_stores_reserves_and_bills_nothing(
    param, value, client, make_key, models, worker, rds, db
):
    secret, key = make_key(name=f"priced-{param}", rpm_limit=5, budget_usd="1")
    body = {"model": "wc-main", "messages": MSG, param: value}
    answers = [
        client.post("/v1/chat/completions", json=body, headers=auth(secret)),
        client.post("/v1/chat/completions", json={**body, "stream": True}, headers=auth(secret)),
        client.post("/v1/chat/completions", json=body, headers={**auth(secret), "Prefer": "respond-async"}),
        client.post("/v1/jobs", json={"body": body}, headers=auth(secret)),
    ]
    for r in answers:
        assert r.status_code == 400, r.get_data(as_text=True)
        error = r.json["error"]
        assert (error["type"], error["param"]) == ("invalid_request_error", param)
        assert error["code"] in ("unsupported_value", "unsupported_parameter")
    state = reservations.peek(rds, key_id=key["id"], limits=KeyLimits(rpm=5, budget_usd=Decimal("1")))
    assert (state.remaining_requests, state.reserved_cost_usd) == (5, 0)  # nothing admitted, nothing reserved
    assert records.jobs(db) == [] and ledger_of(db, key["id"]) == []
    assert records.key_spend(db, key["id"]) == 0
    assert models.chat_bodies() == []
