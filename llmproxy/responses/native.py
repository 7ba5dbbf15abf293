"""The Responses request as it is sent to a provider that has the API (OpenAI): the caller's, minus what the
gateway itself does (background, storage, the conversation of previous_response_id, which goes in as input)."""

from __future__ import annotations

from llmproxy.jsontypes import JSON
from llmproxy.responses.to_chat import HISTORY, input_items

# The gateway's part: it runs background responses, stores them and replays their conversations itself.
_GATEWAY_FIELDS = ("background", "previous_response_id", "metadata", "store", "stream", HISTORY)


def native_request(body: JSON, *, output_cap: int | None) -> JSON:
    """The body for the provider's /responses (model and stream are set by the provider adapter)."""
    request = {name: value for name, value in body.items() if name not in _GATEWAY_FIELDS}
    request["input"] = [*body.get(HISTORY, []), *input_items(body)]
    request["store"] = False  # the gateway keeps the response; the provider need not
    if output_cap is not None and body.get("max_output_tokens") is None:
        request["max_output_tokens"] = output_cap  # what the reservation covers, as for chat
    return request
