"""Public ids: random, prefixed by what they name (`key_…`, `job_…`, `batch_…`, `file-…`)."""

from __future__ import annotations

import secrets


def new_id(prefix: str) -> str:
    """A random public id such as `key_…` or `job_…`."""
    return f"{prefix}_{secrets.token_hex(12)}"


def new_job_id() -> str:
    """A fresh job id (also the request id of its limit reservation)."""
    return new_id("job")


def new_file_id() -> str:
    """A fresh file id, OpenAI-style (`file-…`)."""
    return f"file-{secrets.token_hex(12)}"
