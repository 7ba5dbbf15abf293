"""Routing a request over its chain: retries with backoff, fallbacks, caller errors and streams.

`run_chain` is driven with a real Provider subclass registered under a test kind through
`llmproxy.providers.registry`; it answers each call with the next scripted outcome. `sleep`
is recorded, never slept.
"""

from __future__ import annotations

from collections import defaultdict, deque
from decimal import Decimal

import pytest

from llmproxy.billing.cost import Prices
from llmproxy.jobs.deployment_choice import Target
from llmproxy.jobs.routing import RetryPolicy, Step, _delay, run_chain
from llmproxy.providers import (
    Endpoint,
    Provider,
    ProviderAuthFailed,
    ProviderBadRequest,
    ProviderConnectionError,
    ProviderContextTooLong,
    ProviderError,
    ProviderModelNotFound,
    ProviderRateLimited,
    ProviderStreamBroken,
    ProviderTimeout,
    ProviderUnavailable,
    registry,
)

KIND = "test_scripted"
POLICY = RetryPolicy(retries=2, base_seconds=0.5, max_seconds=20.0)
BODY = {"model": "proxy-model", "messages": [{"role": "user", "content": "hello"}]}


class ScriptedProvider(Provider):
    """Answers each call for an upstream model with its next scripted outcome.

    An outcome is a completion dict, or a ProviderError to raise; for streams, a list of chunks,
    or (chunks, error) to raise the error after the chunks.
    """

    def __init__(self) -> None:
        super().__init__()
        self.script: defaultdict[str, deque] = defaultdict(deque)
        self.calls: list[tuple[str, str]] = []
        self.abandoned = 0  # streams closed by the caller before their end

    def _next(self, method: str, endpoint: Endpoint):
        self.calls.append((method, endpoint.upstream_model))
        outcome = self.script[endpoint.upstream_model].popleft()
        if isinstance(outcome, ProviderError):
            raise outcome
        return outcome

    def complete(self, endpoint, body, *, timeouts):
        return self._next("complete", endpoint)

    def stream(self, endpoint, body, *, timeouts):
        outcome = self._next("stream", endpoint)
        chunks, error = outcome if isinstance(outcome, tuple) else (outcome, None)
        try:
            for one in chunks:
                yield dict(one)
            if error is not None:
                error.chunks_received = len(chunks)
                raise error
        except GeneratorExit:
            self.abandoned += 1
            raise


@pytest.fixture
def provider(monkeypatch) -> ScriptedProvider:
    """The ScriptedProvider registered under KIND, for this test only (the registry is restored after it)."""
    monkeypatch.setattr(registry, "_CLASSES", dict(registry._CLASSES))
    monkeypatch.setattr(registry, "_INSTANCES", {})
    registry.register(KIND)(ScriptedProvider)
    provider = registry.get_provider(KIND)
    assert isinstance(provider, ScriptedProvider)
    return provider


def step(model: str, *, credential: bool = True) -> Step:
    """A step of the chain served by the scripted provider as upstream model `up-<model>`."""
    endpoint = Endpoint("http://upstream.invalid/v1", "sk-test", f"up-{model}") if credential else None
    return Step(model=model, provider="prov", kind=KIND, endpoint=endpoint, prices=Prices(Decimal(1), Decimal(2)))


def completion(content: str = "hi") -> dict:
    message = {"role": "assistant", "content": content}
    return {"id": "chatcmpl-1", "object": "chat.completion", "choices": [{"index": 0, "message": message}]}


def chunk(content: str | None = None, finish: str | None = None) -> dict:
    delta = {"content": content} if content is not None else {}
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return {"id": "chatcmpl-s", "object": "chat.completion.chunk", "model": "up-model", "choices": [choice]}


def run(steps: list[Step], *, stream: bool = False, **kwargs):
    """run_chain with POLICY and a recording sleep; (result, the delays it asked to sleep)."""
    slept: list[float] = []
    result = run_chain(steps, BODY, stream=stream, policy=POLICY, sleep=slept.append, **kwargs)
    return result, slept


def attempts(result) -> list[tuple]:
    return [(a["model"], a["outcome"], a["status_code"]) for a in result.attempts]


# -- plain completions -------------------------------------------------------------


def test_the_first_model_serves(provider):
    a, b = step("a"), step("b")
    provider.script["up-a"].append(completion("hello"))
    result, slept = run([a, b])
    assert result.step is a and result.response == completion("hello")
    assert result.error is None and result.error_status is None and not result.cancelled
    assert attempts(result) == [("a", "ok", 200)]
    assert result.attempts[0]["provider"] == "prov" and result.attempts[0]["latency_ms"] >= 0
    assert provider.calls == [("complete", "up-a")] and slept == []


def test_rate_limited_with_retry_after_waits_exactly_that_then_is_served(provider):
    a, b = step("a"), step("b")
    provider.script["up-a"].extend([ProviderRateLimited("slow down", status_code=429, retry_after=3.0), completion()])
    result, slept = run([a, b])
    assert result.step is a
    assert attempts(result) == [("a", "rate_limited", 429), ("a", "ok", 200)]
    assert slept == [3.0]  # the provider's figure, without jitter
    assert provider.calls == [("complete", "up-a")] * 2


@pytest.mark.parametrize(
    "error",
    [
        ProviderUnavailable("overloaded", status_code=503),
        ProviderTimeout("read timed out"),
        ProviderConnectionError("connection reset"),
        ProviderRateLimited("slow down", status_code=429),  # no Retry-After: the policy's backoff
    ],
    ids=lambda e: e.outcome,
)
def test_retryable_failures_back_off_exponentially_with_jitter_then_are_served(provider, error):
    a, b = step("a"), step("b")
    provider.script["up-a"].extend([error, error, completion()])
    result, slept = run([a, b])
    assert result.step is a
    assert attempts(result) == [("a", error.outcome, error.status_code)] * 2 + [("a", "ok", 200)]
    # base × 2^n, at 50–100 %: retry 0 in [0.25, 0.5], retry 1 in [0.5, 1.0]
    assert len(slept) == 2
    assert 0.25 <= slept[0] <= 0.5 and 0.5 <= slept[1] <= 1.0
    assert ("complete", "up-b") not in provider.calls


def test_retries_are_bounded_by_the_policy_then_the_next_model_serves(provider):
    a, b = step("a"), step("b")
    provider.script["up-a"].extend([ProviderUnavailable("down", status_code=502)] * 3)
    provider.script["up-b"].append(completion("from b"))
    result, slept = run([a, b])
    assert result.step is b and result.response == completion("from b")
    assert attempts(result) == [("a", "unavailable", 502)] * 3 + [("b", "ok", 200)]
    assert len(slept) == POLICY.retries == 2
    assert provider.calls == [("complete", "up-a")] * 3 + [("complete", "up-b")]


def test_retry_after_above_the_cap_goes_to_the_next_model_at_once(provider):
    a, b = step("a"), step("b")
    provider.script["up-a"].append(ProviderRateLimited("later", status_code=429, retry_after=20.5))
    provider.script["up-b"].append(completion())
    result, slept = run([a, b])
    assert result.step is b
    assert attempts(result) == [("a", "rate_limited", 429), ("b", "ok", 200)]
    assert slept == []


def test_retry_after_at_the_cap_is_waited(provider):
    a = step("a")
    provider.script["up-a"].extend([ProviderRateLimited("later", status_code=429, retry_after=20.0), completion()])
    result, slept = run([a])
    assert result.step is a and slept == [20.0]


@pytest.mark.parametrize(
    "error",
    [
        ProviderAuthFailed("bad key", status_code=401),
        ProviderAuthFailed("forbidden", status_code=403),
        ProviderModelNotFound("no such model", status_code=404),
    ],
    ids=lambda e: f"{e.outcome}-{e.status_code}",
)
def test_auth_failure_and_unknown_model_go_to_the_next_model_without_retrying(provider, error):
    a, b = step("a"), step("b")
    provider.script["up-a"].append(error)
    provider.script["up-b"].append(completion())
    result, slept = run([a, b])
    assert result.step is b
    assert attempts(result) == [("a", error.outcome, error.status_code), ("b", "ok", 200)]
    assert slept == [] and provider.calls == [("complete", "up-a"), ("complete", "up-b")]


def test_context_length_error_falls_back(provider):
    a, b = step("a"), step("b")
    provider.script["up-a"].append(ProviderContextTooLong("maximum context length is 8192 tokens", status_code=400))
    provider.script["up-b"].append(completion("a bigger window"))
    result, slept = run([a, b])
    assert result.step is b and result.response == completion("a bigger window")
    assert attempts(result) == [("a", "context_too_long", 400), ("b", "ok", 200)]
    assert slept == []


def test_bad_request_is_returned_as_is_without_fallback(provider):
    a, b = step("a"), step("b")
    upstream_error = {
        "message": "Invalid value for 'temperature': must be at most 2.",
        "type": "invalid_request_error",
        "param": "temperature",
        "code": "invalid_value",
    }
    provider.script["up-a"].append(ProviderBadRequest("bad", status_code=422, upstream_body={"error": upstream_error}))
    result, slept = run([a, b])
    assert result.error_status == 422 and result.error == upstream_error
    assert result.step is None and result.response is None
    assert attempts(result) == [("a", "bad_request", 422)]
    assert provider.calls == [("complete", "up-a")] and slept == []


def test_bad_request_without_an_upstream_error_object_is_a_400_with_a_fixed_message(provider):
    provider.script["up-a"].append(ProviderBadRequest("The upstream refused the request"))
    result, _ = run([step("a"), step("b")])
    assert result.error_status == 400
    assert result.error == {
        "message": "The provider rejected the request (HTTP 400)",
        "type": "invalid_request_error",
        "param": None,
        "code": "upstream_bad_request",
    }
    assert provider.calls == [("complete", "up-a")]


def test_a_model_without_credentials_is_skipped_without_a_call(provider):
    a, b = step("a", credential=False), step("b")
    provider.script["up-b"].append(completion())
    result, _ = run([a, b])
    assert result.step is b
    assert attempts(result) == [("a", "no_credentials", None), ("b", "ok", 200)]
    assert provider.calls == [("complete", "up-b")]


def test_exhausted_chain_is_a_502_listing_every_attempt(provider):
    a, b, c, d = step("a"), step("b", credential=False), step("c"), step("d")
    provider.script["up-a"].append(ProviderAuthFailed("bad key", status_code=401))
    provider.script["up-c"].append(ProviderRateLimited("later", status_code=429, retry_after=60))
    provider.script["up-d"].extend([ProviderTimeout("read timed out")] * 3)
    result, slept = run([a, b, c, d])
    assert result.error_status == 502 and result.step is None and result.response is None
    assert attempts(result) == [
        ("a", "auth_failed", 401),
        ("b", "no_credentials", None),
        ("c", "rate_limited", 429),
        ("d", "timeout", None),
        ("d", "timeout", None),
        ("d", "timeout", None),
    ]
    assert result.error == {
        "message": "All providers failed: prov/a: auth_failed (401); prov/b: no_credentials; "
        "prov/c: rate_limited (429); prov/d: timeout; prov/d: timeout; prov/d: timeout",
        "type": "upstream_error",
        "param": None,
        "code": "all_providers_failed",
    }
    assert len(slept) == 2  # only d's retries waited


def test_an_empty_chain_has_no_model_to_try(provider):
    result, _ = run([])
    assert result.error_status == 502 and result.attempts == []
    assert result.error["message"] == "All providers failed: no model to try"


def test_a_stop_before_the_first_attempt_calls_nothing(provider):
    result, _ = run([step("a")], should_stop=lambda: True)
    assert result.cancelled and result.attempts == [] and provider.calls == []


# -- streams ---------------------------------------------------------------------------


def test_stream_chunks_are_relayed_under_the_proxy_model_name(provider):
    a = step("a")
    provider.script["up-a"].append([chunk("Hel"), chunk("lo"), chunk(finish="stop")])
    emitted = []
    result, _ = run([a], stream=True, emit=lambda c, s: emitted.append((c, s)))
    assert [s for _, s in emitted] == [a, a, a]
    assert [c["model"] for c, _ in emitted] == ["a", "a", "a"]  # not the upstream's name
    assert result.step is a and result.chunks_sent == 3 and result.partial is None
    assert result.response["choices"][0]["message"] == {"role": "assistant", "content": "Hello"}
    assert result.response["choices"][0]["finish_reason"] == "stop"
    assert attempts(result) == [("a", "ok", 200)]


def test_stream_that_fails_before_its_first_chunk_falls_back(provider):
    a, b = step("a"), step("b")
    provider.script["up-a"].append(ProviderAuthFailed("bad key", status_code=401))
    provider.script["up-b"].append([chunk("from b"), chunk(finish="stop")])
    emitted = []
    result, slept = run([a, b], stream=True, emit=lambda c, s: emitted.append(s))
    assert result.step is b and emitted == [b, b]
    assert result.response["choices"][0]["message"]["content"] == "from b"
    assert attempts(result) == [("a", "auth_failed", 401), ("b", "ok", 200)]
    assert slept == []


def test_stream_broken_before_its_first_chunk_is_retried(provider):
    a = step("a")
    provider.script["up-a"].extend([([], ProviderStreamBroken("dropped")), [chunk("ok"), chunk(finish="stop")]])
    result, slept = run([a], stream=True)
    assert result.step is a and result.response["choices"][0]["message"]["content"] == "ok"
    assert attempts(result) == [("a", "stream_broken", None), ("a", "ok", 200)]
    assert len(slept) == 1


def test_stream_broken_after_chunks_ends_with_the_partial_recorded_and_no_fallback(provider):
    a, b = step("a"), step("b")
    provider.script["up-a"].append(([chunk("Hel"), chunk("lo")], ProviderStreamBroken("connection dropped")))
    provider.script["up-b"].append([chunk("never"), chunk(finish="stop")])
    emitted = []
    result, slept = run([a, b], stream=True, emit=lambda c, s: emitted.append(s))
    assert emitted == [a, a] and result.chunks_sent == 2
    assert result.error_status == 502
    assert result.error == {
        "message": "The upstream stream broke after it had started",
        "type": "upstream_error",
        "param": None,
        "code": "stream_interrupted",
    }
    assert result.step is None and result.response is None
    assert result.partial_step is a
    assert result.partial["choices"][0]["message"]["content"] == "Hello"
    assert attempts(result) == [("a", "stream_broken", None)]
    assert provider.calls == [("stream", "up-a")] and slept == []  # retryable, yet neither retried nor fallen back


def test_stopped_stream_keeps_what_was_produced_and_closes_the_upstream(provider):
    a = step("a")
    provider.script["up-a"].append([chunk("Hel"), chunk("lo"), chunk(finish="stop")])
    emitted = []
    result, _ = run([a], stream=True, emit=lambda c, s: emitted.append(c), should_stop=lambda: len(emitted) >= 1)
    assert result.cancelled and len(emitted) == 1 and result.chunks_sent == 1
    assert result.partial_step is a and result.partial["choices"][0]["message"]["content"] == "Hel"
    assert result.step is None and result.response is None and result.error is None
    assert attempts(result) == [("a", "cancelled", None)]
    assert provider.abandoned == 1


# -- the backoff itself ---------------------------------------------------------------


def test_delay_honours_retry_after_up_to_the_cap():
    policy = RetryPolicy(retries=2, base_seconds=1.0, max_seconds=10.0)
    assert _delay(policy, 0, 3.0) == 3.0
    assert _delay(policy, 0, 11.0) is None  # asks for longer than the cap: next model instead
    for retry in range(4):
        backoff = _delay(policy, retry, None)
        assert min(10.0, 2**retry) / 2 <= backoff <= min(10.0, 2**retry)


def test_attempts_carry_fixed_messages_and_the_upstream_text_only_reaches_the_log(provider, caplog):
    a, b = step("a"), step("b")
    provider.script["up-a"].append(
        ProviderAuthFailed("openai: HTTP 401: key sk-live-SECRET123 of org-ABC", status_code=401)
    )
    provider.script["up-b"].append(completion())
    result, _ = run([a, b], job_id="job_leaky")
    failed, served = result.attempts
    assert failed["message"] == "The provider refused the credentials configured for it" and "message" not in served
    assert "SECRET123" not in str(result.attempts) and "org-ABC" not in str(result.attempts)
    (line,) = [r.getMessage() for r in caplog.records if "job_leaky" in r.getMessage()]
    assert "prov/a" in line and "HTTP 401: key sk-***" in line and "org-***" in line and "SECRET123" not in line


# -- deployments -------------------------------------------------------------------


def test_the_first_deployment_with_a_credential_serves_and_attempts_name_it(provider):
    endpoint = Endpoint("http://upstream.invalid/v1", "sk-test", "up-second")
    targets = (Target(7, "prov", KIND, None), Target(9, "prov2", KIND, endpoint, weight=3))
    listed = Step(
        model="a",
        provider="prov",
        kind=KIND,
        endpoint=None,
        prices=Prices(Decimal(1), Decimal(2)),
        deployment=7,
        targets=targets,
    )
    provider.script["up-second"].append(completion("second"))
    result, _ = run([listed])
    assert result.response == completion("second")
    assert (result.step.deployment, result.step.provider, result.step.endpoint) == (9, "prov2", endpoint)
    assert [(a["deployment"], a["provider"], a["outcome"]) for a in result.attempts] == [(9, "prov2", "ok")]
