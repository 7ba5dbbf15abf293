"""What the stub upstream answers: scripted behaviours, fixed errors and the content and usage of an answer.

Split from stub_upstream.py (the HTTP server) so each reads in one sitting; the bodies that carry an
answer (a chat.completion, stream events) are in stub_bodies.py.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from llmproxy.devtools.stub_bodies import tool_calls_of
from llmproxy.jsontypes import JSON

# ---------------------------------------------------------------------------
# Behaviours
# ---------------------------------------------------------------------------


@dataclass
class Ok:
    """Answer successfully. content=None echoes the last user message; usage=False omits usage.

    tool_calls ([{"name", "arguments"}]) answers with those calls instead of text (arguments streamed in
    pieces). fill=True reports the whole output cap as completion tokens (the request's max_completion_tokens
    or max_tokens, times n; UNCAPPED_FILL without a cap): a model that talks until it is stopped.
    pause_after=K stops a stream after K events until the test calls `StubUpstream.resume()`.
    cache_read_tokens / cache_write_tokens: the Anthropic dialect's cache usage (prompt_tokens stays the
    uncached input, as Anthropic's input_tokens is).
    """

    content: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    usage: bool = True
    finish_reason: str = "stop"
    chunk_delay: float = 0.0  # seconds between stream chunks (a token rate, or time to disconnect)
    tool_calls: list[JSON] | None = None
    fill: bool = False
    pause_after: int | None = None
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass
class Fail:
    """Answer with an HTTP error; body=None gives the dialect's usual error body for the status."""

    status: int
    body: JSON | None = None
    retry_after: float | str | None = None  # a number of seconds, or a string sent verbatim
    headers: JSON = field(default_factory=dict)

    @classmethod
    def context_length(cls) -> Fail:
        """OpenAI's 400 for a prompt that exceeds the model's context window."""
        return cls(
            400,
            body=openai_error(
                "This model's maximum context length is 8192 tokens. However, your messages "
                "resulted in 9001 tokens. Please reduce the length of the messages.",
                "invalid_request_error",
                "context_length_exceeded",
                "messages",
            ),
        )


@dataclass
class Hang:
    """Say nothing for `seconds` (longer than the client's read timeout), then answer."""

    seconds: float = 30.0


@dataclass
class BreakStream:
    """Streams: send `after_chunks` events then drop the connection; non-streams: drop at once.

    malformed=True sends a broken `data:` line (not JSON) instead of dropping. `content` and `tool_calls`
    are what the stream was saying when it broke (as Ok's). error_type (Anthropic dialect) sends an `error`
    event of that type (e.g. "overloaded_error") instead of dropping.
    """

    after_chunks: int = 0
    malformed: bool = False
    content: str | None = None
    tool_calls: list[JSON] | None = None
    error_type: str | None = None


@dataclass
class Slow:
    """Wait `seconds` more than the configured latency, then succeed."""

    seconds: float
    content: str | None = None


Behaviour = Ok | Fail | Hang | BreakStream | Slow
_BEHAVIOURS: dict[str, type[Behaviour]] = {
    "ok": Ok,
    "fail": Fail,
    "hang": Hang,
    "break_stream": BreakStream,
    "slow": Slow,
}


def behaviour_from_dict(data: JSON) -> Behaviour:
    """Build a behaviour from its JSON form: {"type": "fail", "status": 429, ...}."""
    data = dict(data)
    kind = data.pop("type")
    if kind == "context_length":
        return Fail.context_length()
    return _BEHAVIOURS[kind](**data)


def behaviour_to_dict(behaviour: Behaviour) -> JSON:
    """The JSON form of a behaviour (inverse of behaviour_from_dict)."""
    kind = next(k for k, cls in _BEHAVIOURS.items() if isinstance(behaviour, cls))
    return {"type": kind, **asdict(behaviour)}


# ---------------------------------------------------------------------------
# Errors and answers
# ---------------------------------------------------------------------------

_DEFAULT_ERRORS = {
    400: ("Invalid value for 'messages'.", "invalid_request_error", "invalid_value"),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to use this model.", "invalid_request_error", "permission_denied"),
    404: ("The model does not exist or you do not have access to it.", "invalid_request_error", "model_not_found"),
    408: ("Request timed out.", "timeout", "timeout"),
    422: ("Unprocessable request.", "invalid_request_error", "unprocessable_entity"),
    429: ("Rate limit reached for requests.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request.", "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
    504: ("Gateway timeout.", "server_error", None),
    529: ("Overloaded.", "overloaded_error", "overloaded"),
}
MISTRAL_FIELDS = frozenset(
    {
        "model",
        "messages",
        "temperature",
        "top_p",
        "max_tokens",
        "stream",
        "stop",
        "random_seed",
        "response_format",
        "tools",
        "tool_choice",
        "presence_penalty",
        "frequency_penalty",
        "n",
        "prediction",
        "parallel_tool_calls",
        "safe_prompt",
        "prompt_mode",
    }
)
INVALID_BODY = object()  # marks a request body that is not JSON
UNCAPPED_FILL = 1_000_000  # what Ok(fill=True) reports for a request without an output cap
KNOWN_MODELS = ("gpt-4o-mini", "gpt-4o", "mistral-small-latest", "mistral-large-latest")


def openai_error(message: str, etype: str, code: str | None, param: str | None = None) -> JSON:
    return {"error": {"message": message, "type": etype, "param": param, "code": code}}


def error_body(status: int, dialect: str, message: str | None = None, code: str | None = None) -> JSON:
    default_message, etype, default_code = _DEFAULT_ERRORS.get(
        status, ("Error.", "invalid_request_error" if status < 500 else "server_error", None)
    )
    message, code = message or default_message, code or default_code
    if dialect == "mistral":
        return {"object": "error", "message": message, "type": etype, "param": None, "code": code}
    return openai_error(message, etype, code)


def fixed_answer(
    body: JSON, token: str, dialect: str, mistral_fields: frozenset[str] = MISTRAL_FIELDS
) -> tuple[int, JSON] | None:
    """(status, body) of the error a fixed rule gives this request whatever the script says, or None.

    A bearer token starting with "bad" or "invalid" gets 401 (OpenAI's message echoes the key in full,
    like a careless upstream); a model starting with "missing" gets 404; Mistral refuses unknown fields (422).
    """
    model = str(body.get("model", ""))
    if token.startswith(("bad", "invalid")):
        if dialect == "mistral":
            return 401, {"message": "Unauthorized", "request_id": uuid.uuid4().hex}
        return 401, error_body(401, dialect, f"Incorrect API key provided: {token}.", "invalid_api_key")
    if model.startswith("missing"):
        return 404, error_body(404, dialect, f"The model `{model}` does not exist.", "model_not_found")
    extra = sorted(set(body) - mistral_fields) if dialect == "mistral" else []
    if not extra:
        return None
    detail = [
        {"type": "extra_forbidden", "loc": ["body", k], "msg": "Extra inputs are not permitted", "input": body[k]}
        for k in extra
    ]
    return 422, {
        "object": "error",
        "message": {"detail": detail},
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def answer_for(body: JSON, behaviour: Behaviour) -> tuple[str, str, JSON | None]:
    """(content, finish_reason, usage) for a successful answer to `body`."""
    messages = body.get("messages") or []
    ok = (
        behaviour
        if isinstance(behaviour, Ok)
        else Ok(content=getattr(behaviour, "content", None), tool_calls=getattr(behaviour, "tool_calls", None))
    )
    calls = tool_calls_of(ok)
    if calls is not None:  # no text: the calls' arguments are what it produced
        produced = sum(len(c["function"]["arguments"].split()) for c in calls)
        ok = replace(ok, content="", finish_reason="tool_calls", completion_tokens=ok.completion_tokens or produced)
    content = ok.content
    if content is None:
        last_user = next((m for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"), {})
        content = "echo: " + _text(last_user.get("content"))
    finish = ok.finish_reason
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    words = content.split()
    if isinstance(limit, int) and 0 < limit < len(words):
        content, finish = " ".join(words[:limit]), "length"
    if not ok.usage:
        return content, finish, None
    # Word counts are a cheap, deterministic stand-in for a tokenizer.
    prompt = (
        ok.prompt_tokens
        if ok.prompt_tokens is not None
        else sum(len(_text(m.get("content")).split()) + 4 for m in messages if isinstance(m, dict))
    )
    completion = ok.completion_tokens if ok.completion_tokens is not None else len(content.split())
    if ok.fill:
        n = body.get("n")
        completion = (limit if isinstance(limit, int) and limit > 0 else UNCAPPED_FILL) * (
            n if isinstance(n, int) else 1
        )
    return (
        content,
        finish,
        {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    )
