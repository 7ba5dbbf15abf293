"""Chat request validation, as OpenAI would answer, with a `lookup` standing in for the catalog (no database)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest

from llmproxy.chat.validation import validate_chat_request
from llmproxy.errors import ApiError
from llmproxy.keys.virtual_keys import KeyInfo

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]


@dataclass(frozen=True)
class Model:
    name: str
    enabled: bool = True


CATALOG = {"gpt-4o-mini": Model("gpt-4o-mini"), "gpt-4": Model("gpt-4"), "retired": Model("retired", enabled=False)}


class Lookup:
    """The catalog as a callable, remembering what it was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __call__(self, name: str) -> Model | None:
        self.asked.append(name)
        return CATALOG.get(name)


def key(allowed_models: list[str] | None = None) -> KeyInfo:
    return KeyInfo(
        id="key_1",
        name="k",
        prefix="sk-abcdefg",
        rpm_limit=None,
        tpm_limit=None,
        budget_usd=None,
        spend_usd=Decimal(0),
        allowed_models=allowed_models,
    )


def refused(body: dict, key_info: KeyInfo | None = None, lookup: Lookup | None = None) -> ApiError:
    with pytest.raises(ApiError) as info:
        validate_chat_request(None, key_info or key(), body, lookup=lookup or Lookup())
    return info.value


def test_a_valid_request_returns_the_catalog_model():
    lookup = Lookup()
    body = {
        "model": "gpt-4o-mini",
        "messages": MESSAGES,
        "stream": True,
        "max_tokens": 1,
        "n": 2,
        "stream_options": {"include_usage": True},
    }
    assert validate_chat_request(None, key(), body, lookup=lookup) is CATALOG["gpt-4o-mini"]
    assert lookup.asked == ["gpt-4o-mini"]


@pytest.mark.parametrize("role", ["system", "user", "assistant", "tool", "function", "developer"])
def test_every_openai_role_is_accepted(role):
    body = {"model": "gpt-4", "messages": [{"role": role, "content": "x"}]}
    assert validate_chat_request(None, key(), body, lookup=Lookup()) is CATALOG["gpt-4"]


@pytest.mark.parametrize(
    "body, code, param",
    [
        ({"messages": MESSAGES}, "missing_field", "model"),
        ({"model": None, "messages": MESSAGES}, "missing_field", "model"),
        ({"model": "", "messages": MESSAGES}, "invalid_request", "model"),
        ({"model": 4, "messages": MESSAGES}, "invalid_request", "model"),
        ({"model": "gpt-4"}, "missing_field", "messages"),
        ({"model": "gpt-4", "messages": []}, "invalid_request", "messages"),
        ({"model": "gpt-4", "messages": "hello"}, "invalid_request", "messages"),
        ({"model": "gpt-4", "messages": ["hello"]}, "invalid_request", "messages[0]"),
        (
            {"model": "gpt-4", "messages": [*MESSAGES, {"role": "robot", "content": "x"}]},
            "invalid_request",
            "messages[2]",
        ),
        ({"model": "gpt-4", "messages": [{"content": "no role"}]}, "invalid_request", "messages[0]"),
        ({"model": "gpt-4", "messages": MESSAGES, "stream": "true"}, "invalid_request", "stream"),
        ({"model": "gpt-4", "messages": MESSAGES, "stream": 1}, "invalid_request", "stream"),
        ({"model": "gpt-4", "messages": MESSAGES, "stream": None}, "invalid_request", "stream"),
        ({"model": "gpt-4", "messages": MESSAGES, "max_tokens": 0}, "invalid_request", "max_tokens"),
        ({"model": "gpt-4", "messages": MESSAGES, "max_tokens": -5}, "invalid_request", "max_tokens"),
        ({"model": "gpt-4", "messages": MESSAGES, "max_tokens": 1.5}, "invalid_request", "max_tokens"),
        ({"model": "gpt-4", "messages": MESSAGES, "max_tokens": "10"}, "invalid_request", "max_tokens"),
        ({"model": "gpt-4", "messages": MESSAGES, "max_tokens": True}, "invalid_request", "max_tokens"),
        (
            {"model": "gpt-4", "messages": MESSAGES, "max_completion_tokens": 0},
            "invalid_request",
            "max_completion_tokens",
        ),
        ({"model": "gpt-4", "messages": MESSAGES, "n": 0}, "invalid_request", "n"),
        (
            {"model": "gpt-4", "messages": MESSAGES, "stream_options": "include_usage"},
            "invalid_request",
            "stream_options",
        ),
        ({"model": "gpt-4", "messages": MESSAGES, "stream_options": []}, "invalid_request", "stream_options"),
    ],
)
def test_a_malformed_body_is_400_naming_the_parameter_before_the_catalog_is_asked(body, code, param):
    lookup = Lookup()
    error = refused(body, lookup=lookup)
    assert (error.status, error.type, error.code, error.param) == (400, "invalid_request_error", code, param)
    assert lookup.asked == []


@pytest.mark.parametrize("name", ["gpt-5-imaginary", "retired"])
def test_an_unknown_or_disabled_model_is_400_model_not_found(name):
    error = refused({"model": name, "messages": MESSAGES})
    assert (error.status, error.type, error.code, error.param) == (
        400,
        "invalid_request_error",
        "model_not_found",
        "model",
    )
    assert f"`{name}`" in error.message


def test_a_key_restricted_to_other_models_is_403_model_not_allowed():
    error = refused({"model": "gpt-4", "messages": MESSAGES}, key(allowed_models=["gpt-4o-mini"]))
    assert (error.status, error.type, error.code) == (403, "permission_error", "model_not_allowed")
    assert "`gpt-4`" in error.message


def test_a_key_with_no_allowed_models_may_use_none():
    error = refused({"model": "gpt-4", "messages": MESSAGES}, key(allowed_models=[]))
    assert (error.status, error.code) == (403, "model_not_allowed")


def test_a_key_allowed_the_model_may_use_it():
    body = {"model": "gpt-4", "messages": MESSAGES}
    assert validate_chat_request(None, key(["gpt-4o-mini", "gpt-4"]), body, lookup=Lookup()) is CATALOG["gpt-4"]


def test_an_unknown_model_is_not_found_even_for_a_key_restricted_to_others():
    # OpenAI's answer: the model does not exist (400), not "you may not use it" (403)
    error = refused({"model": "gpt-5-imaginary", "messages": MESSAGES}, key(allowed_models=["gpt-4"]))
    assert (error.status, error.code) == (400, "model_not_found")
