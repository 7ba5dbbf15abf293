"""Validation of what a batch is made from: its input file and its output expiry.

Each line of the file must be a POST to the batch's endpoint with a valid body and a unique custom_id.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from sqlalchemy.orm import Session

from llmproxy.catalog.model_config import find_model
from llmproxy.errors import ApiError, bad_request
from llmproxy.json_input import JsonInputError, parse_json
from llmproxy.jsontypes import JSON
from llmproxy.keys.virtual_keys import KeyInfo
from llmproxy.operations import OPERATION_OF_URL, validate_request
from llmproxy.storage.models import ApiKey, ModelConfig

MAX_REPORTED_ERRORS = 100
MAX_CUSTOM_ID = 512  # jobs.custom_id
OUTPUT_EXPIRY_SECONDS = (3600, 2_592_000)  # OpenAI's bounds: one hour to 30 days


@dataclass(frozen=True)
class Line:
    """One valid request of the file."""

    number: int
    custom_id: str
    body: JSON


class LineError(Exception):
    """What is wrong with one line, as OpenAI's batch error object."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


def iter_lines(source: BinaryIO) -> Iterator[tuple[int, str]]:
    """(line number, text) of the file's non-blank lines, decoded as they are read (never the whole file at once).

    Iterating raises UnicodeDecodeError where the file stops being UTF-8.
    """
    for number, raw in enumerate(io.TextIOWrapper(source, encoding="utf-8", newline=None), start=1):
        if raw.strip():
            yield number, raw


def validate_input(
    session: Session, key: ApiKey | KeyInfo, lines: Iterable[tuple[int, str]], *, endpoint: str, max_lines: int
) -> tuple[int, list[JSON]]:
    """Check every line (from iter_lines); return the number of requests and the errors of bad lines (at most
    MAX_REPORTED_ERRORS).

    Only the custom_ids are kept, so a file at the size limit is checked without holding every body.
    """
    models: dict[str, ModelConfig | None] = {}

    def lookup(name: str) -> ModelConfig | None:
        # A few models serve thousands of lines: ask the catalog once per name.
        if name not in models:
            models[name] = find_model(session, name)
        return models[name]

    count = 0
    errors: list[JSON] = []
    seen: set[str] = set()
    try:
        for number, raw in lines:
            count += 1
            try:
                line = parse_line(session, key, raw, number, endpoint=endpoint, lookup=lookup)
                if line.custom_id in seen:
                    raise LineError(
                        "duplicate_custom_id", f"custom_id '{line.custom_id}' is used by an earlier line", "custom_id"
                    )
                seen.add(line.custom_id)
            except LineError as bad:
                errors.append(error_json(bad.code, bad.message, number, bad.param))
    except UnicodeDecodeError:
        return count, [error_json("invalid_file", "The file is not UTF-8 text", None)]
    if count == 0:
        errors.append(error_json("empty_file", "The input file has no requests", None))
    if count > max_lines:
        errors.insert(0, error_json("too_many_lines", f"The file has more than {max_lines} requests", None))
    if len(errors) > MAX_REPORTED_ERRORS:
        more = len(errors) - MAX_REPORTED_ERRORS
        errors = errors[:MAX_REPORTED_ERRORS] + [error_json("too_many_errors", f"{more} more lines have errors", None)]
    return count, errors


def read_lines(lines: Iterable[tuple[int, str]]) -> Iterator[tuple[str, JSON]]:
    """(custom_id, body) of each line (from iter_lines) of a file validate_input accepted."""
    for _number, raw in lines:
        data = json.loads(raw)
        yield data["custom_id"], data["body"]


def parse_line(
    session: Session,
    key: ApiKey | KeyInfo,
    raw: str,
    number: int,
    *,
    endpoint: str,
    lookup: Callable[[str], ModelConfig | None],
) -> Line:
    """One line as a request, or LineError naming what is wrong."""
    try:
        data = parse_json(raw)
    except JsonInputError as refused:
        raise LineError("invalid_json_line", f"Line {number}: {refused.message}", refused.param) from None
    except ValueError:
        raise LineError("invalid_json_line", f"Line {number} is not valid JSON") from None
    if not isinstance(data, dict):
        raise LineError("invalid_json_line", f"Line {number} is not a JSON object")
    custom_id = data.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        raise LineError("missing_custom_id", "Each line needs a non-empty string 'custom_id'", "custom_id")
    if len(custom_id) > MAX_CUSTOM_ID:
        raise LineError("invalid_custom_id", f"custom_id is longer than {MAX_CUSTOM_ID} characters", "custom_id")
    if data.get("method") != "POST":
        raise LineError("invalid_method", "'method' must be 'POST'", "method")
    if data.get("url") != endpoint:
        raise LineError("invalid_url", f"'url' must be the batch's endpoint '{endpoint}'", "url")
    body = data.get("body")
    if not isinstance(body, dict):
        raise LineError("invalid_body", "'body' must be a request object", "body")
    if body.get("stream"):
        raise LineError("invalid_body", "Streaming is not available in a batch", "body.stream")
    try:
        validate_request(OPERATION_OF_URL[endpoint], session, key, body, lookup=lookup)
    except ApiError as invalid:
        raise LineError(
            invalid.code or "invalid_body", invalid.message, f"body.{invalid.param}" if invalid.param else "body"
        ) from None
    return Line(number=number, custom_id=custom_id, body=body)


def error_json(code: str, message: str, line: int | None, param: str | None = None) -> JSON:
    """OpenAI's batch error object."""
    return {"code": code, "message": message, "param": param, "line": line}


def validate_output_expiry(value: object) -> int | None:
    """`output_expires_after` as OpenAI takes it ({"anchor": "created_at", "seconds": N}); returns N or None."""
    if value is None:
        return None
    low, high = OUTPUT_EXPIRY_SECONDS
    if (
        not isinstance(value, dict)
        or set(value) != {"anchor", "seconds"}
        or value["anchor"] != "created_at"
        or not isinstance(value["seconds"], int)
        or isinstance(value["seconds"], bool)
        or not low <= value["seconds"] <= high
    ):
        raise bad_request(
            f'\'output_expires_after\' must be {{"anchor": "created_at", "seconds": N}} with N from {low} to {high}',
            code="invalid_output_expires_after",
            param="output_expires_after",
        )
    return value["seconds"]
