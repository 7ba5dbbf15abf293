"""The pure parts of admission: a key's limits at a share, a request's worst-case cost, the x-ratelimit-* headers."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest

from llmproxy.chat.tokens import count_prompt_tokens
from llmproxy.keys.virtual_keys import KeyInfo
from llmproxy.limits.admission import key_limits, ratelimit_headers, worst_case_cost
from llmproxy.limits.reservations import Admission, KeyLimits, RateState


def key(rpm: int | None = None, tpm: int | None = None, budget: str | None = None) -> KeyInfo:
    return KeyInfo(
        id="key_1",
        name="k",
        prefix="sk-abcdefg",
        rpm_limit=rpm,
        tpm_limit=tpm,
        budget_usd=Decimal(budget) if budget is not None else None,
        spend_usd=Decimal("1.5"),
        allowed_models=None,
    )


@dataclass(frozen=True)
class Priced:
    input_cost_per_1m: Decimal
    output_cost_per_1m: Decimal
    cache_write_cost_per_1m: Decimal | None = None


# -- key_limits --------------------------------------------------------------------


def test_a_key_without_limits_has_nothing_to_check():
    assert key_limits(key()) is None
    assert key_limits(key(), share=0.8) is None


def test_limits_in_full_by_default():
    assert key_limits(key(rpm=100, tpm=10_000, budget="25.50")) == KeyLimits(
        rpm=100, tpm=10_000, budget_usd=Decimal("25.50")
    )


def test_rates_are_scaled_by_the_share_and_the_budget_is_not():
    assert key_limits(key(rpm=100, tpm=10_000, budget="25.50"), share=0.8) == KeyLimits(
        rpm=80, tpm=8_000, budget_usd=Decimal("25.50")
    )


@pytest.mark.parametrize(
    "rpm, share, scaled",
    [
        (7, 0.5, 3),  # rounded down: the share is a ceiling
        (1, 0.8, 1),  # never below one request a minute
        (3, 0.1, 1),
    ],
)
def test_a_scaled_rate_is_rounded_down_but_at_least_one(rpm, share, scaled):
    assert key_limits(key(rpm=rpm), share=share) == KeyLimits(rpm=scaled, tpm=None, budget_usd=None)


def test_any_one_limit_is_enough_to_check():
    assert key_limits(key(tpm=500)) == KeyLimits(rpm=None, tpm=500, budget_usd=None)
    assert key_limits(key(budget="0")) == KeyLimits(rpm=None, tpm=None, budget_usd=Decimal(0))


# -- worst_case_cost -------------------------------------------------------------------

MESSAGES = [{"role": "user", "content": "hello world"}]
CHAIN = [
    Priced(input_cost_per_1m=Decimal("0.15"), output_cost_per_1m=Decimal("0.60")),
    Priced(input_cost_per_1m=Decimal("2.50"), output_cost_per_1m=Decimal("0.10")),
]


def test_worst_case_uses_the_highest_prices_across_the_chain_and_the_default_max_tokens():
    body = {"model": "gpt-4", "messages": MESSAGES}
    prompt = count_prompt_tokens(MESSAGES, "gpt-4")
    assert prompt == 9
    tokens, cost = worst_case_cost(CHAIN, body, default_max_tokens=512)
    assert tokens == 9 + 512
    # the highest input price (2.50, of the second model) and output price (0.60, of the first), exactly
    assert cost == (9 * Decimal("2.50") + 512 * Decimal("0.60")) / Decimal(1_000_000) == Decimal("0.0003297")


def test_worst_case_uses_max_tokens_times_n_when_given():
    body = {"model": "gpt-4", "messages": MESSAGES, "max_tokens": 100, "n": 2}
    tokens, cost = worst_case_cost(CHAIN, body, default_max_tokens=512)
    assert tokens == 9 + 200
    assert cost == Decimal("0.0001425")  # (9 × 2.50 + 200 × 0.60) / 1M


def test_the_order_of_the_chain_does_not_matter():
    body = {"model": "gpt-4", "messages": MESSAGES}
    assert worst_case_cost(CHAIN, body, default_max_tokens=512) == worst_case_cost(
        CHAIN[::-1], body, default_max_tokens=512
    )


def test_a_prompt_may_be_billed_as_cache_writes_above_the_input_price():
    # Anthropic bills prompt tokens written to its cache at 1.25× input: the worst case prices the prompt so.
    claude = Priced(Decimal("3"), Decimal("15"), cache_write_cost_per_1m=Decimal("3.75"))
    body = {"model": "claude", "messages": MESSAGES, "max_tokens": 10}
    tokens, cost = worst_case_cost([claude], body, default_max_tokens=512)
    assert (tokens, cost) == (9 + 10, (9 * Decimal("3.75") + 10 * Decimal("15")) / Decimal(1_000_000))
    cheaper_writes = Priced(Decimal("3"), Decimal("15"), cache_write_cost_per_1m=Decimal("1"))
    assert worst_case_cost([cheaper_writes], body, default_max_tokens=512)[1] == (
        (9 * Decimal("3") + 10 * Decimal("15")) / Decimal(1_000_000)
    )


def test_an_empty_chain_costs_nothing_but_still_counts_tokens():
    tokens, cost = worst_case_cost([], {"model": "gpt-4", "messages": MESSAGES}, default_max_tokens=16)
    assert (tokens, cost) == (9 + 16, Decimal(0))


# -- ratelimit_headers --------------------------------------------------------------------


def state(**fields) -> RateState:
    figures = {
        "limit_requests": None,
        "remaining_requests": None,
        "reset_requests": 0.0,
        "limit_tokens": None,
        "remaining_tokens": None,
        "reset_tokens": 0.0,
        "reserved_cost_usd": Decimal(0),
    }
    return RateState(**(figures | fields))


def test_no_state_no_headers():
    assert ratelimit_headers(None) == {}
    assert ratelimit_headers(state()) == {}  # a key with a budget only


def test_headers_for_both_limits():
    got = ratelimit_headers(
        state(
            limit_requests=60,
            remaining_requests=59,
            reset_requests=1.0,
            limit_tokens=10_000,
            remaining_tokens=9_479,
            reset_tokens=0.0625,
        )
    )
    assert got == {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-reset-requests": "1.000s",
        "x-ratelimit-limit-tokens": "10000",
        "x-ratelimit-remaining-tokens": "9479",
        "x-ratelimit-reset-tokens": "0.062s",
    }


def test_headers_only_for_the_limits_the_key_has():
    got = ratelimit_headers(state(limit_tokens=500, remaining_tokens=0, reset_tokens=12.3456))
    assert got == {
        "x-ratelimit-limit-tokens": "500",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "12.346s",
    }


def test_a_refused_admission_gives_the_same_headers():
    refused = Admission(
        limit_requests=1,
        remaining_requests=0,
        reset_requests=42.5,
        limit_tokens=None,
        remaining_tokens=None,
        reset_tokens=0.0,
        reserved_cost_usd=Decimal(0),
        allowed=False,
        reason="requests",
        retry_after=42.5,
    )
    assert ratelimit_headers(refused) == {
        "x-ratelimit-limit-requests": "1",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "42.500s",
    }
