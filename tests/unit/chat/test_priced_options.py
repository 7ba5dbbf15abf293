"""Options the catalog's one price per model cannot bill are refused, naming the param; the rest pass."""

from __future__ import annotations

import pytest

from llmproxy.chat.validation import validate_chat_request
from llmproxy.errors import ApiError
from tests.unit.chat.test_validation import key

KEY = key()


class Catalog:
    """A one-model catalog that remembers whether it was asked (refusals come before it)."""

    enabled = True
    mode = "chat"

    def __init__(self) -> None:
        self.asked = 0

    def __call__(self, name: str) -> Catalog:
        self.asked += 1
        return self


def chat(**fields) -> dict:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], **fields}


PRICED_APART = [
    (chat(service_tier="priority"), "service_tier", "unsupported_value"),
    (chat(service_tier="flex"), "service_tier", "unsupported_value"),
    (chat(service_tier="scale"), "service_tier", "unsupported_value"),
    (chat(service_tier="turbo"), "service_tier", "unsupported_value"),
    (chat(modalities=["text", "audio"]), "modalities", "unsupported_value"),
    (chat(modalities=["audio"]), "modalities", "unsupported_value"),
    (chat(audio={"voice": "alloy", "format": "wav"}), "audio", "unsupported_parameter"),
    (chat(prediction={"type": "content", "content": "draft"}), "prediction", "unsupported_parameter"),
    (chat(web_search_options={}), "web_search_options", "unsupported_parameter"),
]


@pytest.mark.parametrize("body, param, code", PRICED_APART)
def test_an_option_priced_apart_is_a_400_naming_it(body, param, code):
    catalog = Catalog()
    with pytest.raises(ApiError) as info:
        validate_chat_request(None, KEY, body, lookup=catalog)
    error = info.value
    assert (error.status, error.type, error.param, error.code) == (400, "invalid_request_error", param, code)
    assert "one price" in error.message
    assert catalog.asked == 0


MALFORMED = [
    (chat(service_tier=1), "service_tier"),
    (chat(modalities=["text", "video"]), "modalities[1]"),
    (chat(modalities="audio"), "modalities"),
    (chat(audio="alloy"), "audio"),
    (chat(prediction={"type": "content"}), "prediction.content"),
    (chat(web_search_options=[]), "web_search_options"),
]


@pytest.mark.parametrize("body, param", MALFORMED)
def test_a_malformed_value_is_refused_for_its_shape_first(body, param):
    with pytest.raises(ApiError) as info:
        validate_chat_request(None, KEY, body, lookup=Catalog())
    assert info.value.param == param
    assert info.value.code in ("invalid_request", "missing_field")


@pytest.mark.parametrize(
    "body",
    [
        chat(service_tier="auto"),
        chat(service_tier="default"),
        chat(modalities=["text"]),
        chat(service_tier=None, modalities=None, audio=None, prediction=None, web_search_options=None),
    ],
)
def test_list_price_options_and_nulls_pass(body):
    catalog = Catalog()
    assert validate_chat_request(None, KEY, body, lookup=catalog) is catalog


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_an_output_cap_beyond_any_model_is_refused(field):
    with pytest.raises(ApiError) as info:
        validate_chat_request(None, KEY, chat(**{field: 2**31}), lookup=Catalog())
    assert (info.value.status, info.value.param) == (400, field)
    assert validate_chat_request(None, KEY, chat(**{field: 2**31 - 1}), lookup=Catalog())
