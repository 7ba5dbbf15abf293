"""A 200 MB upload to the real web process (gunicorn) is streamed to storage: the worker's peak memory grows by at
most 50 MB, and the file reads back byte for byte (SHA-256), again without growing it.

The body is generated as it is sent (never built in memory here either); the peak is the gunicorn worker's
VmHWM from /proc, read after a warm-up request and after each transfer.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
from pathlib import Path

import requests

from llmproxy.devtools.waiting import wait_for
from tests.support.processes import WebProcess

SIZE = 200_000_000  # bytes of the file: 200 MB, under the default 200 MiB limit
LINE_BYTES = 8_000  # 25,000 lines: under the default 50,000-line limit
MAX_GROWTH = 50 * 1024 * 1024
BOUNDARY = "e2e-upload-boundary"


def peak_rss(pid: int) -> int:
    """The process's peak resident set (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for process {pid}")


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue  # gone meanwhile
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def file_lines():
    """The file, a line at a time: each line a distinct JSON object, the last one cut to make SIZE exactly."""
    sent = 0
    number = 0
    while sent < SIZE:
        head = b'{"custom_id": "line-%08d", "pad": "' % number
        line = head + b"x" * (LINE_BYTES - len(head) - 3) + b'"}\n'
        line = line[: SIZE - sent]
        sent += len(line)
        number += 1
        yield line


HEAD = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.jsonl"\r\n'
    "Content-Type: application/jsonl\r\n\r\n"
).encode()
TAIL = f"\r\n--{BOUNDARY}--\r\n".encode()


def upload(url: str, secret: str) -> tuple[int, dict, str]:
    """POST the multipart body as it is generated (its Content-Length known up front, as SDKs send it); returns
    the status, the answer and the SHA-256 of the file sent."""
    digest = hashlib.sha256()
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    try:
        conn.putrequest("POST", "/v1/files")
        conn.putheader("Authorization", f"Bearer {secret}")
        conn.putheader("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")
        conn.putheader("Content-Length", str(len(HEAD) + SIZE + len(TAIL)))
        conn.endheaders()
        conn.send(HEAD)
        for line in file_lines():
            digest.update(line)
            conn.send(line)
        conn.send(TAIL)
        response = conn.getresponse()
        return response.status, json.loads(response.read()), digest.hexdigest()
    finally:
        conn.close()


def test_a_200_mb_upload_and_download_grow_the_web_worker_by_at_most_50_mb(e2e_env, make_key, db):
    secret, _ = make_key(name="big-upload")
    web = WebProcess(e2e_env, workers=1)
    web.start()
    try:
        worker_pid = wait_for(lambda: (c := children(web.proc.pid)) and c[0], timeout=30, message="a gunicorn worker")
        headers = {"Authorization": f"Bearer {secret}"}
        # Warm-up: the upload and download paths have run once (imports, pools, caches) before the baseline.
        small = requests.post(
            web.url + "/v1/files", headers=headers, data={"purpose": "batch"}, files={"file": ("s.jsonl", b"{}\n")}
        )
        assert small.status_code == 200, small.text
        assert requests.get(f"{web.url}/v1/files/{small.json()['id']}/content", headers=headers).content == b"{}\n"
        baseline = peak_rss(worker_pid)

        status, uploaded, sent_sha = upload(web.url, secret)
        assert status == 200, uploaded
        assert uploaded["bytes"] == SIZE
        after_upload = peak_rss(worker_pid)
        assert after_upload - baseline <= MAX_GROWTH, f"upload grew the worker by {(after_upload - baseline) >> 20} MiB"

        digest = hashlib.sha256()
        received = 0
        with requests.get(f"{web.url}/v1/files/{uploaded['id']}/content", headers=headers, stream=True) as down:
            assert down.status_code == 200 and down.headers["Content-Length"] == str(SIZE)
            for piece in down.iter_content(chunk_size=1024 * 1024):
                digest.update(piece)
                received += len(piece)
        assert received == SIZE and digest.hexdigest() == sent_sha
        after_download = peak_rss(worker_pid)
        assert after_download - baseline <= MAX_GROWTH, (
            f"download grew the worker by {(after_download - baseline) >> 20} MiB"
        )
        print(
            f"\nweb worker peak RSS {baseline >> 20} MiB; +{(after_upload - baseline) >> 20} MiB after the upload, "
            f"+{(after_download - baseline) >> 20} MiB after the download"
        )
        assert children(web.proc.pid) == [worker_pid]  # the same worker served it all (no restart hid a peak)
        assert requests.delete(f"{web.url}/v1/files/{uploaded['id']}", headers=headers).json()["deleted"] is True
    finally:
        web.stop()
