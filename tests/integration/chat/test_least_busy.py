"""ROUTING_STRATEGY=least_busy over real HTTP: while one deployment holds a slow call, the next calls go to the other
(the weighted strategy would still give the slow one its turns); in-flight counts are shared through real Redis."""

from __future__ import annotations

import threading
from collections import Counter
from decimal import Decimal

import pytest

from llmproxy.billing.cost import Prices
from llmproxy.devtools.stub_responses import Ok
from llmproxy.devtools.waiting import wait_for
from llmproxy.jobs.deployment_choice import DeploymentRouter, Target, busy_key
from llmproxy.jobs.routing import RetryPolicy, Step, run_chain
from llmproxy.providers import Endpoint

BODY = {"model": "lb-model", "messages": [{"role": "user", "content": "hello"}]}
POLICY = RetryPolicy(retries=0)


def two_deployments(stub) -> Step:
    a, b = (Target(900 + i, "openai", "openai", Endpoint(stub.url, "sk-lb", f"lb-{x}")) for i, x in enumerate("ab"))
    return Step("lb-model", a.provider, a.kind, a.endpoint, Prices(Decimal(1), Decimal(1)), a.deployment, (a, b))


def call(step: Step, redis_client, strategy: str, *, stream: bool = False) -> str:
    """One call through run_chain with its own router (as each job has); the upstream model that served it."""
    router = DeploymentRouter(redis_client, strategy=strategy)
    result = run_chain([step], BODY, stream=stream, policy=POLICY, router=router)
    assert result.step is not None and result.step.endpoint is not None, result.error
    return result.step.endpoint.upstream_model


@pytest.mark.parametrize("strategy, slow_one_gets", [("least_busy", 0), ("weighted", 5)])
def test_calls_avoid_a_deployment_busy_with_a_slow_call(stub, redis_client, strategy, slow_one_gets):
    stub.reset()
    step = two_deployments(stub)
    stub.script("lb-a", Ok(pause_after=1))  # the first call to lb-a: a stream held until the stub resumes
    slow = threading.Thread(target=call, args=(step, redis_client, strategy), kwargs={"stream": True}, daemon=True)
    slow.start()  # a tie at first: least_busy gives it to the first deployment, weighted to the first turn
    wait_for(lambda: stub.chat_bodies("lb-a"), timeout=10, message="the slow call to reach lb-a")
    if strategy == "least_busy":
        assert int(redis_client.get(busy_key(900))) == 1  # in flight, as every worker sees it

    served = Counter(call(step, redis_client, strategy) for _ in range(10))

    assert served["lb-a"] == slow_one_gets and served["lb-b"] == 10 - slow_one_gets, served
    stub.resume()
    slow.join(timeout=10)
    assert not slow.is_alive()
    if strategy == "least_busy":
        assert int(redis_client.get(busy_key(900))) == 0  # the slow call ended: its count went back
