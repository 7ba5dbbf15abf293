"""Request options that change what a request costs, which the gateway refuses rather than bill wrongly.

The catalog holds one price per model (input, cached input, output per 1M tokens), and every request is
billed and reserved at it. Some OpenAI options make the provider charge something else:

| option | what the provider charges |
|---|---|
| `service_tier` other than `auto`/`default` (`flex`, `scale`, `priority`) | another price list |
| `modalities` with `audio`, `audio` | audio output tokens, at the audio price |
| `prediction` | rejected prediction tokens as completion tokens, beyond the output cap |
| `web_search_options` | a fee per search, besides the tokens |

Each is refused with a 400 naming it (code `unsupported_value` or `unsupported_parameter`), before
anything is stored, reserved or sent. Each check first checks the shape OpenAI documents, so a malformed
value gets the same 400 as before. A null value means "not set" and is never checked.
"""

from __future__ import annotations

from typing import Any

from llmproxy import json_schema as js
from llmproxy.chat.message_shapes import check_text_content
from llmproxy.chat.shape_checks import check_choice, check_object, check_str, invalid, required
from llmproxy.errors import ApiError, bad_request

LIST_PRICE_TIERS = ("auto", "default")  # the tiers billed at the catalog's price
_WHY = "this gateway bills every model at one price per token"


def _unpriced(param: str, what: str, code: str = "unsupported_parameter") -> ApiError:
    return bad_request(
        f"Unsupported {what} '{param}': {_WHY}, and this option is priced apart.", code=code, param=param
    )


@js.describes(js.enum(LIST_PRICE_TIERS))
def check_service_tier(value: Any, param: str) -> None:
    """`service_tier`: only the tiers billed at list price (auto, default)."""
    check_str(value, param)
    if value not in LIST_PRICE_TIERS:
        raise bad_request(
            f"Unsupported value for '{param}': '{value[:32]}'. Only 'auto' and 'default' are served: {_WHY}, "
            "and other tiers are priced apart.",
            code="unsupported_value",
            param=param,
        )


@js.describes(js.array(js.enum(("text",))))
def check_modalities(value: Any, param: str) -> None:
    """`modalities`: an array of 'text' and 'audio', of which only text output is served."""
    if not isinstance(value, list):
        raise invalid(param, "an array of 'text' and 'audio'")
    for i, modality in enumerate(value):
        check_choice(modality, f"{param}[{i}]", ("text", "audio"))
    if "audio" in value:
        raise _unpriced(param, "value 'audio' for", code="unsupported_value")


@js.describes(js.NOTHING)
def check_audio(value: Any, param: str) -> None:
    """`audio` (output voice and format): refused, audio output is priced apart."""
    check_object(value, param)
    raise _unpriced(param, "parameter")


@js.describes(js.NOTHING)
def check_prediction(value: Any, param: str) -> None:
    """`prediction` (predicted outputs): refused, rejected prediction tokens are billed beyond the output cap."""
    check_object(value, param)
    check_choice(required(value, "type", param), f"{param}.type", ("content",))
    check_text_content(required(value, "content", param), f"{param}.content")
    raise _unpriced(param, "parameter")


@js.describes(js.NOTHING)
def check_web_search_options(value: Any, param: str) -> None:
    """`web_search_options`: refused, each search carries a fee besides the tokens."""
    check_object(value, param)
    raise _unpriced(param, "parameter")
