"""The output cap sent upstream when the caller gave none: the figure its reservation covers."""

from __future__ import annotations

import pytest

from llmproxy.chat.output_cap import capped_body, choice_count, output_limit, requested_output_limit
from llmproxy.chat.tokens import estimate_request
from llmproxy.providers import get_provider

BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def test_a_body_without_a_cap_gets_the_default_in_the_providers_field_and_is_not_changed_itself():
    sent = capped_body(BODY, "max_completion_tokens", 4096)
    assert sent == {**BODY, "max_completion_tokens": 4096}
    assert "max_completion_tokens" not in BODY  # the stored request stays the caller's


@pytest.mark.parametrize(
    "own", [{"max_tokens": 7}, {"max_completion_tokens": 7}, {"max_tokens": 9, "max_completion_tokens": 7}]
)
def test_the_callers_own_cap_is_sent_as_it_is(own):
    body = {**BODY, **own}
    assert capped_body(body, "max_completion_tokens", 4096) is body
    assert requested_output_limit(body) == 7 == output_limit(body, default_max_tokens=4096)


def test_no_cap_configured_sends_the_body_as_it_is():
    assert capped_body(BODY, "max_tokens", None) is BODY


@pytest.mark.parametrize(
    "kind, field", [("openai", "max_completion_tokens"), ("openai_compatible", "max_tokens"), ("mistral", "max_tokens")]
)
def test_each_provider_names_the_field_it_honours(kind, field):
    assert get_provider(kind).output_cap_field == field


@pytest.mark.parametrize("body, most", [(BODY, 512 * 3), ({**BODY, "max_tokens": 10}, 30)])
def test_the_reservation_is_the_cap_times_n(body, most):
    body = {**body, "n": 3}
    assert choice_count(body) == 3
    assert estimate_request(body, default_max_tokens=512)[1] == most
