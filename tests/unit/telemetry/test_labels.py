"""Metric labels come from bounded sets: a value a caller makes up never becomes a counter field."""

import pytest

from llmproxy.providers import errors as provider_errors
from llmproxy.telemetry import labels, metrics


class Recorder(metrics.Counters):
    """Counters that keep what was added (no Redis)."""

    def __init__(self) -> None:
        self.fields: list[tuple[str, str]] = []

    def add(self, key: str, field: str, amount: int = 1) -> None:
        self.fields.append((key, field))


@pytest.mark.parametrize(
    "method, label",
    [("GET", "GET"), ("DELETE", "DELETE"), ("BREW", "other"), ("get", "other"), ("X" * 5000, "other")],
)
def test_http_methods_outside_the_standard_set_are_other(method, label):
    counters = Recorder()
    metrics.record_http(counters, route="/v1/models", method=method, status=200)
    assert counters.fields == [(metrics.HTTP, f"/v1/models|{label}|200")]


def test_statuses_outside_http_are_other():
    assert [labels.status_label(s) for s in (200, 599, 99, 600, 1234567)] == ["200", "599", "other", "other", "other"]


def test_attempt_outcomes_outside_the_taxonomy_are_other():
    counters = Recorder()
    attempts = [{"provider": "openai", "outcome": "rate_limited"}, {"provider": "openai", "outcome": "made-up"}]
    metrics.record_job(
        counters, attempts=attempts, model=None, prompt_tokens=0, completion_tokens=0, cost_usd=None, latency_ms=None
    )
    assert counters.fields == [(metrics.ATTEMPTS, "openai|rate_limited"), (metrics.ATTEMPTS, "openai|other")]


def test_every_outcome_of_the_taxonomy_is_a_label():
    classes = [provider_errors.ProviderError, *provider_errors.ProviderError.__subclasses__()]
    outcomes = {cls.outcome for cls in classes} | {"ok", "no_credentials", "cancelled"}
    assert outcomes <= labels.OUTCOMES
    assert {labels.outcome_label(o) for o in outcomes} == outcomes
