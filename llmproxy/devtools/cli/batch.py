"""`python -m llmproxy batch submit|attach`: run an OpenAI-style batch against a proxy and collect its results.

A plain HTTP client of the proxy's Batch API (requests, not the openai SDK): upload the file,
create the batch, poll it every second with a progress bar on stderr, then write the output and
error files. Ctrl-C detaches without cancelling; `attach BATCH_ID` picks the batch up again.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click
import requests

from llmproxy.batches.states import FINAL_BATCH_STATUSES
from llmproxy.devtools.cli.app import emit, main
from llmproxy.jsontypes import JSON

F = TypeVar("F", bound=Callable[..., Any])

RETRYABLE = (502, 503, 504)


class ProxyError(click.ClickException):
    """The proxy refused a request; shown as its OpenAI-style error message."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class BatchClient:
    """The few Batch API calls the CLI makes."""

    def __init__(self, url: str, key: str) -> None:
        self.base = url.rstrip("/").removesuffix("/v1") + "/v1"
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {key}"

    def call(self, method: str, path: str, *, timeout: float = 30, **kwargs: Any) -> requests.Response:
        """One request; an error answer becomes ProxyError with the proxy's message."""
        response = self.http.request(method, self.base + path, timeout=timeout, **kwargs)
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:200]
            raise ProxyError(f"{method} {path}: {response.status_code} {message}", response.status_code)
        return response

    def upload(self, path: Path) -> JSON:
        """Upload a JSONL file with purpose=batch."""
        with path.open("rb") as handle:
            uploaded: JSON = self.call(
                "POST",
                "/files",
                timeout=600,
                data={"purpose": "batch"},
                files={"file": (path.name, handle, "application/jsonl")},
            ).json()
        return uploaded

    def create(self, file_id: str, metadata: dict[str, str] | None) -> JSON:
        """Create the batch."""
        body: JSON = {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}
        if metadata:
            body["metadata"] = metadata
        created: JSON = self.call("POST", "/batches", json=body).json()
        return created

    def batch(self, batch_id: str) -> JSON:
        """The batch object now."""
        batch: JSON = self.call("GET", f"/batches/{batch_id}").json()
        return batch

    def content(self, file_id: str) -> bytes:
        """A file's bytes."""
        return self.call("GET", f"/files/{file_id}/content", timeout=600).content


class Progress:
    """A one-line progress bar on stderr: done/failed/total, rate per second and time left."""

    def __init__(self, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self.stream, self.width = stream, width
        self.tty = stream.isatty()
        self.samples: deque[tuple[float, int]] = deque(maxlen=30)  # about the last 30 polls
        self.last_text, self.last_print = "", 0.0

    def update(self, batch: JSON) -> None:
        """Show the batch's counts (on a TTY in place, elsewhere one line when they changed)."""
        counts = batch.get("request_counts") or {}
        total, completed, failed = counts.get("total", 0), counts.get("completed", 0), counts.get("failed", 0)
        now = time.monotonic()
        self.samples.append((now, completed + failed))
        text = self.render(total, completed, failed, batch["status"])
        if self.tty:
            self.stream.write("\r" + text.ljust(len(self.last_text)))
        elif text != self.last_text and (now - self.last_print >= 2 or batch["status"] in FINAL_BATCH_STATUSES):
            self.stream.write(text + "\n")
            self.last_print = now
        self.stream.flush()
        self.last_text = text

    def rate(self) -> float:
        """Lines ended per second over the recent samples."""
        if len(self.samples) < 2:
            return 0.0
        (t0, d0), (t1, d1) = self.samples[0], self.samples[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 else 0.0

    def render(self, total: int, completed: int, failed: int, status: str) -> str:
        """The bar's text."""
        done = completed + failed
        filled = int(self.width * done / total) if total else 0
        rate = self.rate()
        left = f"{_clock((total - done) / rate)} left" if rate > 0 and done < total else "--:-- left"
        return (
            f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} done, {failed} failed, "
            f"{rate:.1f}/s, {left} ({status})"
        )

    def close(self) -> None:
        """End the in-place line."""
        if self.tty and self.last_text:
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def follow(client: BatchClient, batch: JSON, *, poll: float) -> JSON:
    """Poll the batch until it ends (transient proxy or network errors are waited out); return it."""
    progress = Progress()
    try:
        while batch["status"] not in FINAL_BATCH_STATUSES:
            progress.update(batch)
            time.sleep(poll)
            try:
                batch = client.batch(batch["id"])
            except (requests.ConnectionError, requests.Timeout) as exc:
                click.echo(f"\nproxy unreachable ({exc.__class__.__name__}); still waiting", err=True)
            except ProxyError as exc:
                if exc.status not in RETRYABLE:
                    raise
                click.echo(f"\n{exc.message}; still waiting", err=True)
        progress.update(batch)
    except KeyboardInterrupt:
        progress.close()
        click.echo(
            f"detached; the batch keeps running. Reattach with: python -m llmproxy batch attach {batch['id']}", err=True
        )
        sys.exit(130)
    progress.close()
    return batch


def input_order(path: Path | None) -> dict[str, int]:
    """custom_id → position in the input file (results are written in that order)."""
    order: dict[str, int] = {}
    if path is None:
        return order
    with path.open("rb") as handle:
        for line in handle:
            try:
                order.setdefault(json.loads(line)["custom_id"], len(order))
            except (ValueError, KeyError, TypeError):
                continue
    return order


def write_results(client: BatchClient, file_id: str | None, target: Path, order: dict[str, int]) -> int:
    """Download a result file to `target` (in input order when known); return its line count."""
    if file_id is None:
        return 0
    lines = [line for line in client.content(file_id).splitlines() if line.strip()]
    if order:
        lines.sort(key=lambda line: order.get(json.loads(line).get("custom_id"), len(order)))
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(b"".join(line + b"\n" for line in lines))
    os.replace(partial, target)  # never leave half a file under the final name
    return len(lines)


def finish(client: BatchClient, batch: JSON, *, output: Path, errors: Path, order: dict[str, int]) -> None:
    """Report how the batch ended and write its result files; exit 0 only if it completed."""
    if batch["status"] == "failed":
        for error in (batch.get("errors") or {}).get("data") or []:
            where = f"line {error['line']}: " if error.get("line") else ""
            click.echo(f"{where}{error.get('code')}: {error.get('message')}", err=True)
    written = write_results(client, batch.get("output_file_id"), output, order)
    failed = write_results(client, batch.get("error_file_id"), errors, order)
    click.echo(
        f"batch {batch['id']} {batch['status']}: {written} results in {output}"
        + (f", {failed} errors in {errors}" if failed else ""),
        err=True,
    )
    emit(batch)
    if batch["status"] != "completed":
        sys.exit(1)


def _connection(func: F) -> F:
    for decorator in reversed(
        [
            click.option(
                "--url",
                envvar="LLMPROXY_URL",
                default="http://127.0.0.1:3000",
                show_default=True,
                help="The proxy's base URL (env LLMPROXY_URL).",
            ),
            click.option(
                "--key", envvar="LLMPROXY_API_KEY", required=True, help="A virtual key (env LLMPROXY_API_KEY)."
            ),
            click.option(
                "--output", type=click.Path(dir_okay=False, path_type=Path), help="Where to write the results."
            ),
            click.option(
                "--errors", type=click.Path(dir_okay=False, path_type=Path), help="Where to write the failed lines."
            ),
            click.option("--poll", type=float, default=1.0, show_default=True, help="Seconds between status checks."),
        ]
    ):
        func = decorator(func)
    return func


@main.group("batch")
def batch_group() -> None:
    """Submit OpenAI-style batches to a running proxy and collect their results."""


@batch_group.command("submit")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_connection
@click.option("--metadata", multiple=True, metavar="KEY=VALUE", help="Metadata of the batch (repeatable).")
def submit(
    file: Path, url: str, key: str, output: Path | None, errors: Path | None, poll: float, metadata: tuple[str, ...]
) -> None:
    """Upload FILE (JSONL), create the batch, wait for it with a progress bar, write its results."""
    client = BatchClient(url, key)
    meta = dict(item.split("=", 1) for item in metadata if "=" in item) or None
    uploaded = client.upload(file)
    batch = client.create(uploaded["id"], meta)
    click.echo(f"batch {batch['id']} created from {uploaded['id']} ({uploaded['bytes']} bytes)", err=True)
    batch = follow(client, batch, poll=poll)
    finish(
        client,
        batch,
        output=output or file.with_name(file.stem + ".output.jsonl"),
        errors=errors or file.with_name(file.stem + ".errors.jsonl"),
        order=input_order(file),
    )


@batch_group.command("attach")
@click.argument("batch_id")
@_connection
@click.option(
    "--input",
    "input_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The input file, to write results in its order.",
)
def attach(
    batch_id: str, url: str, key: str, output: Path | None, errors: Path | None, poll: float, input_file: Path | None
) -> None:
    """Follow a batch created earlier until it ends, then write its results."""
    client = BatchClient(url, key)
    batch = follow(client, client.batch(batch_id), poll=poll)
    finish(
        client,
        batch,
        output=output or Path(f"{batch_id}.output.jsonl"),
        errors=errors or Path(f"{batch_id}.errors.jsonl"),
        order=input_order(input_file),
    )
