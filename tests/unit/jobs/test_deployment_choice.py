"""Choosing a model's deployment against a real Redis: weighted turns, cooldowns, least busy, and run_chain moving
to another deployment at once when one fails."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

from llmproxy.billing.cost import Prices
from llmproxy.jobs.deployment_choice import DeploymentRouter, Target, Wait, busy_key, cool_key
from llmproxy.jobs.deployment_quota import quota_id
from llmproxy.jobs.routing import RetryPolicy, Step, run_chain
from llmproxy.limits.reservations import limit_keys
from llmproxy.providers import Endpoint, ProviderRateLimited, ProviderUnavailable
from tests.unit.jobs.test_routing import BODY, KIND, completion, provider  # noqa: F401 - the provider fixture

POLICY = RetryPolicy(retries=2, base_seconds=0.5, max_seconds=20.0)


def target(deployment: int, weight: int = 1, *, credential: bool = True) -> Target:
    endpoint = Endpoint("http://upstream.invalid/v1", "sk-test", f"up-{deployment}") if credential else None
    return Target(deployment, f"prov{deployment}", KIND, endpoint, weight)


def test_weights_share_calls_exactly_in_turn(redis_client):
    router = DeploymentRouter(redis_client)
    targets = [target(1, 3), target(2, 1)]
    chosen = Counter(router.choose("m", targets).deployment for _ in range(400))
    assert chosen == {1: 300, 2: 100}


def test_a_cooling_deployment_is_skipped_while_another_is_healthy(redis_client):
    router = DeploymentRouter(redis_client, cooldown_seconds=5)
    a, b = target(1, 10), target(2, 1)
    router.cool_down(a, None)
    assert 4000 < redis_client.pttl(cool_key(1)) <= 5000
    assert {router.choose("m", [a, b]).deployment for _ in range(50)} == {2}
    router.cool_down(b, 30)  # the provider's Retry-After wins over the default
    assert 29000 < redis_client.pttl(cool_key(2)) <= 30000
    assert {router.choose("m", [a, b]).deployment for _ in range(50)} == {1, 2}  # all cooling: all by weight
    redis_client.delete(cool_key(1), cool_key(2))


def test_excluded_and_keyless_deployments_are_never_chosen(redis_client):
    router = DeploymentRouter(redis_client)
    targets = [target(1, credential=False), target(2), target(3)]
    assert {router.choose("m", targets, exclude={2}).deployment for _ in range(20)} == {3}
    assert router.choose("m", targets, exclude={2, 3}) is None
    assert DeploymentRouter().choose("m", targets).deployment == 2  # without Redis: the first usable one


def test_least_busy_picks_the_deployment_with_fewest_calls_in_flight(redis_client):
    router = DeploymentRouter(redis_client, strategy="least_busy")
    a, b = target(1, 5), target(2, 1)
    assert router.choose("m", [a, b]) == a  # a tie goes to the heavier
    with router.calling(a):
        assert int(redis_client.get(busy_key(1))) == 1
        assert router.choose("m", [a, b]) == b
        with router.calling(b), router.calling(b):
            assert router.choose("m", [a, b]) == a
    assert int(redis_client.get(busy_key(1))) == 0 and int(redis_client.get(busy_key(2))) == 0


def _step(*targets: Target) -> Step:
    first = targets[0]
    return Step(
        model="m",
        provider=first.provider,
        kind=KIND,
        endpoint=first.endpoint,
        prices=Prices(Decimal(1), Decimal(2)),
        deployment=first.deployment,
        targets=targets,
    )


def test_a_failing_deployment_gives_way_to_another_at_once_and_cools_down(provider, redis_client):  # noqa: F811
    router = DeploymentRouter(redis_client, cooldown_seconds=5)
    step = _step(target(1, 1000), target(2, 1))  # the first has almost every turn
    provider.script["up-1"].append(ProviderRateLimited("429", status_code=429, retry_after=7))
    provider.script["up-2"].extend([completion("second")] * 3)
    slept: list[float] = []

    result = run_chain([step], BODY, stream=False, policy=POLICY, sleep=slept.append, router=router)

    assert result.response == completion("second") and slept == []  # no backoff before another deployment
    assert [(a["deployment"], a["outcome"]) for a in result.attempts] == [(1, "rate_limited"), (2, "ok")]
    assert 6000 < redis_client.pttl(cool_key(1)) <= 7000  # its Retry-After
    for _ in range(2):  # while it cools, the other one serves first
        again = run_chain([step], BODY, stream=False, policy=POLICY, sleep=slept.append, router=router)
        assert [(a["deployment"], a["outcome"]) for a in again.attempts] == [(2, "ok")]
    assert provider.calls == [("complete", "up-1")] + [("complete", "up-2")] * 3


def test_retries_with_backoff_start_once_every_deployment_failed(provider, redis_client):  # noqa: F811
    router = DeploymentRouter(redis_client, cooldown_seconds=5)
    step = _step(target(1), target(2))
    for up in ("up-1", "up-2"):
        provider.script[up].extend([ProviderUnavailable("503", status_code=503), completion("late")])
    slept: list[float] = []

    result = run_chain([step], BODY, stream=False, policy=POLICY, sleep=slept.append, router=router)

    assert result.response == completion("late")
    deployments = [a["deployment"] for a in result.attempts]
    # Each deployment once at once, then one retry after one backoff.
    assert sorted(deployments[:2]) == [1, 2] and len(deployments) == 3 and len(slept) == 1
    redis_client.delete(cool_key(1), cool_key(2))


@pytest.mark.parametrize("strategy", ["weighted", "least_busy"])
def test_one_deployment_needs_no_redis(strategy):
    router = DeploymentRouter(None, strategy=strategy)
    only = target(1)
    assert router.choose("m", [only]) == only
    with router.calling(only):
        router.cool_down(only, 3)  # nothing to reach: no error


def _limited(redis_client, now: list[float], **limits) -> tuple[DeploymentRouter, Target, Target]:
    """A router on a fixed clock, a deployment with `limits` that has nearly every turn, and one without."""
    redis_client.delete(*limit_keys(quota_id(11)), *limit_keys(quota_id(12)))
    router = DeploymentRouter(redis_client, clock=lambda: now[0], tokens=lambda: 400)
    endpoint = Endpoint("http://upstream.invalid/v1", "sk-test", "up")
    return router, Target(11, "p", KIND, endpoint, weight=1000, **limits), Target(12, "p", KIND, endpoint, weight=1)


def test_a_deployment_at_its_rpm_limit_is_passed_over_until_its_window_has_room(redis_client):
    now = [600_000.0]
    router, limited, other = _limited(redis_client, now, rpm_limit=2)
    for _ in range(2):
        assert router.choose("m", [limited, other]) == limited
        now[0] += 10
    assert {router.choose("m", [limited, other]).deployment for _ in range(10)} == {12}  # 2 calls in 60 s
    now[0] += 41  # the first call left the rolling window: room for one
    assert [router.choose("m", [limited, other]).deployment for _ in range(2)] == [11, 12]


def test_a_served_calls_real_tokens_replace_its_estimate(redis_client):
    now = [600_000.0]
    router, limited, other = _limited(redis_client, now, tpm_limit=1000)
    assert router.choose("m", [limited, other]) == limited  # 400 estimated
    with router.calling(limited):
        pass
    router.used(limited, 900)
    assert router.choose("m", [limited, other]) == other  # 900 used + 400 > 1000
    now[0] += 61
    chosen = router.choose("m", [limited, other])
    with pytest.raises(ProviderRateLimited), router.calling(chosen):
        raise ProviderRateLimited("429", status_code=429)
    assert chosen == limited and router.choose("m", [limited, other]) == limited  # a failed call's tokens are free


def test_when_every_deployment_is_full_interactive_calls_go_and_batch_lines_wait(redis_client):
    now = [600_000.0]
    router, limited, _ = _limited(redis_client, now, rpm_limit=1)
    assert router.hold("m", [limited]) == limited
    now[0] += 20
    held = router.hold("m", [limited])
    assert isinstance(held, Wait) and held.seconds == pytest.approx(40)  # when the first call leaves the window
    assert router.choose("m", [limited]) == limited  # interactive: steered, never refused, and counted
    now[0] += 40
    assert isinstance(router.hold("m", [limited]), Wait)  # the interactive call holds the window now
    too_big = DeploymentRouter(redis_client, clock=lambda: now[0], tokens=lambda: 5000)
    small = Target(12, "p", KIND, limited.endpoint, tpm_limit=1000)
    assert too_big.hold("m", [small]) == small  # no wait helps: it goes, and the provider answers


def test_a_pinned_deployment_is_the_first_call_and_not_counted_again(redis_client):
    now = [600_000.0]
    _, limited, other = _limited(redis_client, now, rpm_limit=1)
    pacer = DeploymentRouter(redis_client, clock=lambda: now[0], job_id="job-1")
    assert pacer.hold("m", [other, limited]) == other  # no limits: nothing held
    assert pacer.hold("m", [limited]) == limited
    run = DeploymentRouter(redis_client, clock=lambda: now[0], job_id="job-1", pinned=11)
    assert run.choose("m", [limited, other]) == limited  # the call pacing reserved
    assert run.choose("m", [limited, other]) == other  # a retry is a call of its own: the window is full
