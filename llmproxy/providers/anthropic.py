"""Anthropic's Messages API (kind "anthropic"): OpenAI chat completions in, Claude's messages out, and back.

POST {api_base}/v1/messages with `x-api-key` and `anthropic-version: 2023-06-01`. Requests are
translated by :mod:`llmproxy.providers.anthropic_request`, answers by `anthropic_response`; in short:

- A message: text blocks -> `content` (joined), tool_use blocks -> `tool_calls` (input as a JSON
  string), thinking blocks dropped; stop_reason end_turn/stop_sequence/pause_turn -> "stop",
  max_tokens/model_context_window_exceeded -> "length", tool_use -> "tool_calls", refusal -> "content_filter".
- Usage: input_tokens + cache_read_input_tokens + cache_creation_input_tokens -> prompt_tokens
  (Anthropic counts the three apart, OpenAI's prompt includes its cached part);
  `prompt_tokens_details.cached_tokens` = cache reads and `prompt_tokens_details.cache_write_tokens` =
  cache creation, which billing prices at the model's cache-write price.
- Stream events -> `chat.completion.chunk`s: the role chunk with the first content block (so an
  `error` event right after message_start still allows a retry or a fallback), text deltas, tool
  calls (id and name first, then argument pieces, `index` per call), the finish chunk at
  message_stop, then `{"choices": [], "usage": ...}` as the OpenAI adapter yields it.
- Errors: HTTP errors through the shared taxonomy (529 overloaded like 503, 429 with Retry-After);
  an `error` event mid-stream is classified by its type as if it had been the response's status.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from llmproxy.jsontypes import JSON
from llmproxy.providers.anthropic_request import messages_request
from llmproxy.providers.anthropic_response import StreamTranslator, completion_from_message
from llmproxy.providers.contract import Endpoint, Provider, Timeouts
from llmproxy.providers.error_mapping import error_from_exception, error_from_response, redact_error
from llmproxy.providers.errors import ProviderAuthFailed, ProviderError, ProviderStreamBroken, ProviderUnavailable
from llmproxy.providers.registry import register
from llmproxy.providers.transport import TRANSPORT_ERRORS, Response, drain, iter_sse_data, release

API_VERSION = "2023-06-01"
# The HTTP status each error type comes with, so a mid-stream `error` event is classified as the response would be.
ERROR_STATUSES = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


@register("anthropic")
class AnthropicProvider(Provider):
    """POST {api_base}/v1/messages; OpenAI bodies translated there and answers translated back."""

    output_cap_field = "max_tokens"  # Anthropic requires it; the gateway always sets one

    def url(self, endpoint: Endpoint) -> str:
        """The Messages URL under the endpoint's base (the base is the URL before /v1/messages)."""
        return endpoint.api_base.rstrip("/") + "/v1/messages"

    def headers(self, endpoint: Endpoint, *, stream: bool) -> dict[str, str]:
        """Anthropic's key and version headers."""
        if not endpoint.api_key:
            raise ProviderAuthFailed(f"{self.kind}: no API key configured", provider=self.kind)
        return {
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if stream else "application/json",
            "x-api-key": endpoint.api_key,
            "anthropic-version": API_VERSION,
        }

    def complete(self, endpoint: Endpoint, body: JSON, *, timeouts: Timeouts) -> JSON:
        """Run a non-streaming chat completion; return OpenAI's `chat.completion` dict."""
        try:
            headers = self.headers(endpoint, stream=False)
            payload = messages_request(body, endpoint.upstream_model, stream=False)
            resp = self.post(self.url(endpoint), headers, payload, timeouts=timeouts, stream=False)
            try:
                data = resp.json()
            except ValueError:
                raise ProviderUnavailable(
                    f"{self.kind}: response is not JSON", status_code=resp.status, provider=self.kind
                ) from None
            if not isinstance(data, dict) or not isinstance(data.get("content"), list):
                raise ProviderUnavailable(
                    f"{self.kind}: response has no content", status_code=resp.status, provider=self.kind
                )
            return completion_from_message(data, endpoint.upstream_model)
        except ProviderError as err:
            raise redact_error(err, endpoint.api_key) from None

    def stream(self, endpoint: Endpoint, body: JSON, *, timeouts: Timeouts) -> Iterator[JSON]:
        """Yield `chat.completion.chunk` dicts as the Messages stream arrives; the usage chunk comes last.

        Every ProviderError raised here carries `chunks_received`; closing the generator closes the
        HTTP response, which stops the upstream call.
        """
        received = 0
        resp: Response | None = None
        try:
            headers = self.headers(endpoint, stream=True)
            payload = messages_request(body, endpoint.upstream_model, stream=True)
            resp = self.post(self.url(endpoint), headers, payload, timeouts=timeouts, stream=True)
            translator = StreamTranslator(endpoint.upstream_model)
            for event in self._events(resp):
                for chunk in translator.chunks(event):
                    received += 1
                    yield chunk
                if translator.finished:
                    drain(resp)
                    return
            raise ProviderStreamBroken(f"{self.kind}: stream ended without message_stop", provider=self.kind)
        except ProviderError as err:
            err.chunks_received = received
            raise redact_error(err, endpoint.api_key) from None
        finally:
            if resp is not None:
                release(resp)

    def _events(self, resp: Response) -> Iterator[JSON]:
        """Parsed SSE events; a drop, bad JSON or an `error` event raises the taxonomy."""
        try:
            for data in iter_sse_data(resp):
                try:
                    event = json.loads(data)
                except ValueError:
                    raise ProviderStreamBroken(f"{self.kind}: malformed stream event", provider=self.kind) from None
                if not isinstance(event, dict):
                    raise ProviderStreamBroken(f"{self.kind}: malformed stream event", provider=self.kind)
                if event.get("type") == "error":
                    raise stream_error(event, self.kind)
                yield event
        except UnicodeDecodeError:
            raise ProviderStreamBroken(f"{self.kind}: stream is not UTF-8", provider=self.kind) from None
        except TRANSPORT_ERRORS as exc:
            raise error_from_exception(exc, provider=self.kind, mid_stream=True) from None


def stream_error(event: JSON, provider: str) -> ProviderError:
    """An `error` event as the taxonomy: classified as an HTTP response with its type's status would be."""
    error = event["error"] if isinstance(event.get("error"), dict) else {}
    status = ERROR_STATUSES.get(str(error.get("type")), 500)
    err = error_from_response(status, None, json.dumps(event).encode(), provider=provider)
    err.message = err.message.replace(f"HTTP {status}", f"stream error event ({error.get('type')})", 1)
    err.args = (err.message,)
    return err
