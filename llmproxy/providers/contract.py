"""The provider interface: where to call (Endpoint), how long to wait (Timeouts), and the Provider base class."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

from llmproxy.jsontypes import JSON
from llmproxy.providers.error_mapping import error_from_exception, error_from_response
from llmproxy.providers.errors import ProviderModelNotFound
from llmproxy.providers.transport import TRANSPORT_ERRORS, Http, Response, release


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom to call: base URL, decrypted key (None: no auth header), upstream model."""

    api_base: str
    api_key: str | None
    upstream_model: str


@dataclass(frozen=True)
class Timeouts:
    """Seconds to connect, and the longest idle gap between bytes (per chunk for streams)."""

    connect: float = 5.0
    read: float = 60.0


class Provider(ABC):
    """One upstream protocol. Instances are shared per process; they hold only pooled connections."""

    kind: str = ""
    # The request field that caps completion tokens per choice, which the gateway sets when the caller
    # did not (llmproxy.chat.output_cap): the one every OpenAI-compatible server knows.
    output_cap_field: str = "max_tokens"

    def __init__(self, http: Http | None = None) -> None:
        self.http = http or Http()

    @abstractmethod
    def complete(self, endpoint: Endpoint, body: JSON, *, timeouts: Timeouts) -> JSON:
        """Run a non-streaming chat completion; return OpenAI's `chat.completion` dict."""

    @abstractmethod
    def stream(self, endpoint: Endpoint, body: JSON, *, timeouts: Timeouts) -> Iterator[JSON]:
        """Yield OpenAI `chat.completion.chunk` dicts as they arrive, usage chunk last."""

    # Whether embed() is served: the admin API refuses an embedding model on a provider without it.
    embeds: bool = False

    def embed(self, endpoint: Endpoint, body: JSON, *, timeouts: Timeouts) -> JSON:
        """Create embeddings; return OpenAI's embeddings list (a provider without them is skipped for the next)."""
        raise ProviderModelNotFound(f"{self.kind}: this provider serves no embeddings", provider=self.kind)

    # Whether the provider has OpenAI's Responses API: a Responses request is then sent to it as it is
    # (respond, respond_stream); every other provider gets its chat translation (llmproxy.responses).
    responds: bool = False

    def respond(self, endpoint: Endpoint, body: JSON, *, timeouts: Timeouts) -> JSON:
        """Run a Responses API request natively; return the answer read as a chat completion."""
        raise ProviderModelNotFound(f"{self.kind}: this provider has no Responses API", provider=self.kind)

    def respond_stream(self, endpoint: Endpoint, body: JSON, *, timeouts: Timeouts) -> Iterator[JSON]:
        """Stream a Responses API request natively; yield its events read as chat chunks."""
        raise ProviderModelNotFound(f"{self.kind}: this provider has no Responses API", provider=self.kind)

    def post(self, url: str, headers: dict[str, str], payload: JSON, *, timeouts: Timeouts, stream: bool) -> Response:
        """POST JSON; return a 2xx response or raise the taxonomy (the response is released then)."""
        try:
            resp = self.http.post(
                url,
                json.dumps(payload).encode("utf-8"),
                headers,
                connect=timeouts.connect,
                read=timeouts.read,
                stream=stream,
            )
        except TRANSPORT_ERRORS as exc:
            raise error_from_exception(exc, provider=self.kind) from None
        if resp.status >= 300:
            try:
                body = resp.data
            except TRANSPORT_ERRORS:
                body = b""
            finally:
                release(resp)
            raise error_from_response(resp.status, resp.headers, body, provider=self.kind)
        return resp
