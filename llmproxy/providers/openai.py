"""OpenAI's chat completions API (kind "openai"), and the protocol its dialects share.

`OpenAICompatibleProvider` and `MistralProvider` subclass `OpenAIProvider` and override
only the hooks: `prepare_body`, `normalise_completion` and `normalise_chunk`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial

from llmproxy.jsontypes import JSON
from llmproxy.providers.contract import Endpoint, Provider, Timeouts
from llmproxy.providers.embedding_answers import normalise_embeddings
from llmproxy.providers.error_mapping import error_from_exception, redact_error
from llmproxy.providers.errors import ProviderAuthFailed, ProviderError, ProviderStreamBroken, ProviderUnavailable
from llmproxy.providers.openai_responses import ChunkReader, completion_of
from llmproxy.providers.registry import register
from llmproxy.providers.transport import TRANSPORT_ERRORS, Response, drain, iter_sse_data, release


@register("openai")
class OpenAIProvider(Provider):
    """POST {api_base}/chat/completions with a Bearer key; bodies pass through as they are."""

    # OpenAI itself always needs a key; openai_compatible servers may run without one.
    requires_api_key = True
    # OpenAI's reasoning models refuse max_tokens; every OpenAI chat model takes this one.
    output_cap_field = "max_completion_tokens"

    # -- hooks for dialects ------------------------------------------------

    def prepare_body(self, endpoint: Endpoint, body: JSON, *, stream: bool) -> JSON:
        """The upstream request body: the caller's, with the upstream model and stream flags set."""
        payload = dict(body)
        payload["model"] = endpoint.upstream_model
        payload["stream"] = stream
        if stream:
            # Always ask for usage: cost is recorded from the provider's own count.
            options = body.get("stream_options")
            payload["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        else:
            # OpenAI rejects stream_options on a non-streaming request.
            payload.pop("stream_options", None)
        return payload

    def normalise_completion(self, data: JSON, endpoint: Endpoint) -> JSON:
        """Fill the fields OpenAI always sends and lean servers omit; usage None = not reported."""
        data.setdefault("id", _new_id())
        data.setdefault("object", "chat.completion")
        data.setdefault("created", int(time.time()))
        data.setdefault("model", endpoint.upstream_model)
        data.setdefault("usage", None)
        return data

    def prepare_embedding_body(self, endpoint: Endpoint, body: JSON) -> JSON:
        """The upstream embeddings body: the caller's, with the upstream model set."""
        return {**body, "model": endpoint.upstream_model}

    def normalise_chunk(self, chunk: JSON, defaults: JSON) -> list[JSON]:
        """Zero or more OpenAI chunks for one upstream event (`defaults`: id/created/model)."""
        for key, value in defaults.items():
            if chunk.get(key) is None:
                chunk[key] = value
        return [chunk]

    # -- the protocol ------------------------------------------------------

    def url(self, endpoint: Endpoint) -> str:
        """The chat completions URL under the endpoint's base."""
        return endpoint.api_base.rstrip("/") + "/chat/completions"

    def headers(self, endpoint: Endpoint, *, stream: bool) -> dict[str, str]:
        """Request headers; no Authorization at all when the endpoint has no key."""
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if stream else "application/json",
        }
        if endpoint.api_key:
            headers["Authorization"] = f"Bearer {endpoint.api_key}"
        return headers

    def _check_key(self, endpoint: Endpoint) -> None:
        if self.requires_api_key and not endpoint.api_key:
            raise ProviderAuthFailed(f"{self.kind}: no API key configured", provider=self.kind)

    def complete(self, endpoint: Endpoint, body: JSON, *, timeouts: Timeouts) -> JSON:
        """Run a non-streaming chat completion; return OpenAI's `chat.completion` dict."""
        try:
            self._check_key(endpoint)
            payload = self.prepare_body(endpoint, body, stream=False)
            resp = self.post(
                self.url(endpoint), self.headers(endpoint, stream=False), payload, timeouts=timeouts, stream=False
            )
            try:
                data = resp.json()
            except ValueError:
                raise ProviderUnavailable(
                    f"{self.kind}: response is not JSON", provider=self.kind, status_code=resp.status
                ) from None
            if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
                raise ProviderUnavailable(
                    f"{self.kind}: response has no choices", status_code=resp.status, provider=self.kind
                )
            return self.normalise_completion(data, endpoint)
        except ProviderError as err:
            raise redact_error(err, endpoint.api_key) from None

    embeds = True

    def embed(self, endpoint: Endpoint, body: JSON, *, timeouts: Timeouts) -> JSON:
        """POST {api_base}/embeddings; return OpenAI's embeddings list, vectors encoded as the caller asked."""
        try:
            self._check_key(endpoint)
            url = endpoint.api_base.rstrip("/") + "/embeddings"
            payload = self.prepare_embedding_body(endpoint, body)
            resp = self.post(url, self.headers(endpoint, stream=False), payload, timeouts=timeouts, stream=False)
            try:
                wants_base64 = body.get("encoding_format") == "base64"
                return normalise_embeddings(resp.json(), model=endpoint.upstream_model, wants_base64=wants_base64)
            except ValueError:
                raise ProviderUnavailable(
                    f"{self.kind}: the answer is not an embeddings list", provider=self.kind, status_code=resp.status
                ) from None
        except ProviderError as err:
            raise redact_error(err, endpoint.api_key) from None

    responds = True  # OpenAI has the Responses API: a Responses request is sent to it as it is

    def respond(self, endpoint: Endpoint, body: JSON, *, timeouts: Timeouts) -> JSON:
        """POST {api_base}/responses; return the answer read as a chat completion (openai_responses)."""
        try:
            self._check_key(endpoint)
            payload = {**body, "model": endpoint.upstream_model, "stream": False}
            url = endpoint.api_base.rstrip("/") + "/responses"
            resp = self.post(url, self.headers(endpoint, stream=False), payload, timeouts=timeouts, stream=False)
            try:
                data = resp.json()
            except ValueError:
                data = None
            if not isinstance(data, dict) or not isinstance(data.get("output"), list):
                raise ProviderUnavailable(
                    f"{self.kind}: the answer is not a response", provider=self.kind, status_code=resp.status
                )
            return completion_of(data, endpoint.upstream_model)
        except ProviderError as err:
            raise redact_error(err, endpoint.api_key) from None

    def respond_stream(self, endpoint: Endpoint, body: JSON, *, timeouts: Timeouts) -> Iterator[JSON]:
        """POST {api_base}/responses with stream; yield its events read as chat chunks (as `stream` does)."""
        reader = ChunkReader(endpoint.upstream_model)

        def read(event: JSON) -> list[JSON]:
            if event.get("type") in ("response.failed", "error"):
                raise ProviderStreamBroken(f"{self.kind}: {_error_text(event)}", provider=self.kind)
            return reader.read(event)

        payload = {**body, "model": endpoint.upstream_model, "stream": True}
        url = endpoint.api_base.rstrip("/") + "/responses"
        yield from self._relay(endpoint, url, payload, read, timeouts=timeouts, until=lambda: reader.ended)

    def stream(self, endpoint: Endpoint, body: JSON, *, timeouts: Timeouts) -> Iterator[JSON]:
        """Yield `chat.completion.chunk` dicts as they arrive; the usage chunk comes last.

        Every ProviderError raised here carries `chunks_received` (chunks yielded before it).
        Closing the generator closes the HTTP response, which stops the upstream call.
        """
        defaults: JSON = {
            "id": _new_id(),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": endpoint.upstream_model,
        }
        payload = self.prepare_body(endpoint, body, stream=True)
        read = partial(self.normalise_chunk, defaults=defaults)
        yield from self._relay(endpoint, self.url(endpoint), payload, read, timeouts=timeouts, until=None)

    def _relay(
        self,
        endpoint: Endpoint,
        url: str,
        payload: JSON,
        read: Callable[[JSON], list[JSON]],
        *,
        timeouts: Timeouts,
        until: Callable[[], bool] | None,
    ) -> Iterator[JSON]:
        """POST a streaming request; yield the chunks `read` makes of each event. A ProviderError raised here
        carries `chunks_received`; closing the generator closes the HTTP response (the upstream call stops)."""
        received = 0
        resp: Response | None = None
        try:
            self._check_key(endpoint)
            resp = self.post(url, self.headers(endpoint, stream=True), payload, timeouts=timeouts, stream=True)
            for event in self._events(resp, until=until):
                for chunk in read(event):
                    received += 1
                    yield chunk
        except ProviderError as err:
            err.chunks_received = received
            raise redact_error(err, endpoint.api_key) from None
        finally:
            if resp is not None:
                release(resp)

    def _events(self, resp: Response, *, until: Callable[[], bool] | None) -> Iterator[JSON]:
        """Parsed SSE events up to [DONE] (or, for the Responses API, until `until()` says the last came);
        a drop, bad JSON or a missing end is a broken stream."""
        try:
            for data in iter_sse_data(resp):
                if data.strip() == "[DONE]" or (until is not None and until()):
                    drain(resp)
                    return
                try:
                    event = json.loads(data)
                except ValueError:
                    raise ProviderStreamBroken(f"{self.kind}: malformed stream event", provider=self.kind) from None
                if not isinstance(event, dict):
                    raise ProviderStreamBroken(f"{self.kind}: malformed stream event", provider=self.kind)
                if until is None and "error" in event and "choices" not in event:
                    raise ProviderStreamBroken(
                        f"{self.kind}: upstream error mid-stream: {_error_text(event)}", provider=self.kind
                    )
                yield event
        except UnicodeDecodeError:
            raise ProviderStreamBroken(f"{self.kind}: stream is not UTF-8", provider=self.kind) from None
        except TRANSPORT_ERRORS as exc:
            raise error_from_exception(exc, provider=self.kind, mid_stream=True) from None
        if until is not None and until():
            return
        # A clean EOF without [DONE] still means we may have lost the tail of the answer.
        raise ProviderStreamBroken(f"{self.kind}: stream ended without [DONE]", provider=self.kind)


def _new_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def _error_text(event: JSON) -> str:
    error = event.get("error")
    message = error.get("message") if isinstance(error, dict) else error
    return str(message)[:300]
