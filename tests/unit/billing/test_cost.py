"""Cost from usage and prices in exact Decimals, rounded once; usage read from OpenAI's shape."""

from __future__ import annotations

from decimal import Decimal

import pytest

from llmproxy.billing.cost import Prices, Usage, compute_cost, usage_from_openai
from llmproxy.storage.money import MONEY_QUANTUM

PRICES = Prices(input_per_1m=Decimal("2.50"), output_per_1m=Decimal("10.00"), cached_input_per_1m=Decimal("1.25"))


def test_cost_is_prompt_and_completion_at_their_prices():
    cost = compute_cost(Usage(prompt_tokens=1000, completion_tokens=500), Prices(Decimal("0.15"), Decimal("0.60")))
    assert cost == Decimal("0.00045")  # (1000 × 0.15 + 500 × 0.60) / 1M
    assert cost.as_tuple().exponent == MONEY_QUANTUM.as_tuple().exponent  # at storage precision


def test_cost_is_exact_where_floats_are_not():
    usage = Usage(prompt_tokens=98_765_432_109, completion_tokens=1_234_567_891)
    prices = Prices(input_per_1m=Decimal("12.345678901234"), output_per_1m=Decimal("98.765432109876"))
    # (98765432109 × 12.345678901234 + 1234567891 × 98.765432109876) / 1M = 1341258.942582933636914022…
    assert compute_cost(usage, prices) == Decimal("1341258.942582933637")
    as_floats = (98_765_432_109 * 12.345678901234 + 1_234_567_891 * 98.765432109876) / 1e6
    assert Decimal(as_floats).quantize(MONEY_QUANTUM) != Decimal("1341258.942582933637")  # 17 digits are too many


def test_cached_prompt_tokens_are_priced_at_the_cached_price():
    usage = Usage(prompt_tokens=1000, completion_tokens=100, cached_prompt_tokens=400)
    # 600 uncached × 2.50 + 400 cached × 1.25 + 100 × 10.00, per 1M
    assert compute_cost(usage, PRICES) == Decimal("0.0030")


def test_cached_prompt_tokens_are_priced_as_input_without_a_cached_price():
    usage = Usage(prompt_tokens=1000, completion_tokens=100, cached_prompt_tokens=400)
    prices = Prices(input_per_1m=Decimal("2.50"), output_per_1m=Decimal("10.00"))
    assert compute_cost(usage, prices) == Decimal("0.0035")  # (1000 × 2.50 + 100 × 10.00) / 1M
    assert compute_cost(usage, prices) == compute_cost(Usage(1000, 100), prices)


def test_cost_is_rounded_once_half_even_at_storage_precision():
    # 1 token at 0.0000005 per 1M is 5e-13 USD: half of the 1e-12 quantum, rounded to even (0)
    assert compute_cost(Usage(1, 0), Prices(Decimal("0.0000005"), Decimal(0))) == Decimal(0)
    # 3 tokens: 1.5e-12, half way, rounded to even (2e-12)
    assert compute_cost(Usage(3, 0), Prices(Decimal("0.0000005"), Decimal(0))) == Decimal("2E-12")
    # rounding the sum once, not each part: 1.5e-12 + 1.5e-12 = 3e-12 (each rounded would give 4e-12)
    prices = Prices(Decimal("0.0000005"), Decimal("0.0000005"))
    assert compute_cost(Usage(3, 3), prices) == Decimal("3E-12")


def test_no_tokens_cost_nothing():
    assert compute_cost(Usage(), PRICES) == Decimal(0)


@pytest.mark.parametrize(
    "usage, expected",
    [
        ({"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}, Usage(12, 5)),
        ({"prompt_tokens": 12, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 8}}, Usage(12, 5, 8)),
        ({"prompt_tokens": 12, "completion_tokens": 5, "prompt_tokens_details": None}, Usage(12, 5)),
        ({"prompt_tokens": 12, "completion_tokens": 5, "prompt_tokens_details": {}}, Usage(12, 5)),
        ({"prompt_tokens": 12, "completion_tokens": 5, "prompt_tokens_details": "odd"}, Usage(12, 5)),
        # more cached tokens than prompt tokens: capped, never a negative uncached part
        ({"prompt_tokens": 4, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 9}}, Usage(4, 1, 4)),
        ({"prompt_tokens": 7}, Usage(7, 0)),  # Mistral-style partial reports
        ({"completion_tokens": 3}, Usage(0, 3)),
        ({"prompt_tokens": None, "completion_tokens": 2}, Usage(0, 2)),
        ({"prompt_tokens": "12", "completion_tokens": "5"}, Usage(12, 5)),
    ],
)
def test_usage_from_openai_shapes(usage, expected):
    read = usage_from_openai(usage)
    assert read == expected and not read.estimated


@pytest.mark.parametrize(
    "usage",
    [
        None,
        "12 tokens",
        [],
        {},
        {"total_tokens": 17},
        {"prompt_tokens": "many", "completion_tokens": 1},
        {"prompt_tokens": 1, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": "some"}},
    ],
)
def test_missing_or_unusable_usage_is_none(usage):
    assert usage_from_openai(usage) is None


def test_usage_as_openai_round_trips():
    assert Usage(12, 5, 8).as_openai() == {
        "prompt_tokens": 12,
        "completion_tokens": 5,
        "total_tokens": 17,
        "prompt_tokens_details": {"cached_tokens": 8},
    }
    assert usage_from_openai(Usage(12, 5, 8).as_openai()) == Usage(12, 5, 8)
    assert "prompt_tokens_details" not in Usage(12, 5).as_openai()


def test_cache_writes_are_priced_at_the_cache_write_price():
    prices = Prices(Decimal("3"), Decimal("15"), cached_input_per_1m=Decimal("0.3"), cache_write_per_1m=Decimal("3.75"))
    usage = Usage(prompt_tokens=1000, completion_tokens=100, cached_prompt_tokens=600, cache_write_tokens=300)
    # (100 uncached × 3 + 600 reads × 0.3 + 300 writes × 3.75 + 100 × 15) / 1M
    assert compute_cost(usage, prices) == Decimal("0.003105")


def test_cache_writes_are_priced_as_input_without_a_cache_write_price():
    usage = Usage(prompt_tokens=1000, completion_tokens=100, cached_prompt_tokens=400, cache_write_tokens=200)
    # 400 uncached × 2.50 + 400 cached × 1.25 + 200 writes × 2.50 + 100 × 10.00, per 1M
    assert compute_cost(usage, PRICES) == Decimal("0.0030")


def test_cache_writes_are_read_from_prompt_tokens_details_and_round_trip():
    usage = usage_from_openai(
        {
            "prompt_tokens": 360,
            "completion_tokens": 1,
            "prompt_tokens_details": {"cached_tokens": 300, "cache_write_tokens": 50},
        }
    )
    assert usage == Usage(360, 1, 300, cache_write_tokens=50)
    assert usage_from_openai(usage.as_openai()) == usage
    assert usage.as_openai()["prompt_tokens_details"] == {"cached_tokens": 300, "cache_write_tokens": 50}
    # A report claiming more cached parts than prompt tokens bills no more prompt than it claims.
    odd = usage_from_openai(
        {"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 8, "cache_write_tokens": 9}}
    )
    assert odd == Usage(10, 0, 8, cache_write_tokens=2)
