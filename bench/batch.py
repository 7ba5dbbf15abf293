"""Batch (issue 5): a big batch through the OpenAI-compatible files + batches API, and what it does to
synchronous callers while it drains.

As production runs it (the Procfile's `worker` and `batch`): one Celery worker process on
`interactive` and P on `batch` (one per core by default) with T threads each. With the stub answering
in L ms, the batch workers could at best finish P × T / L lines per second (every thread always waiting
on the stub, the proxy costing nothing): that ideal is the reference of the throughput rows.

Order of the measurement:
1. the probe on the idle system (one synchronous request at a time with a short pause, on the
   `interactive` queue, with the same key);
2. upload the JSONL file (`POST /v1/files`, purpose=batch) and create the batch (`POST /v1/batches`);
3. from the moment the batch exists until every line has ended: the same probe, running, and
   `GET /v1/batches/{id}` polled for the progress; then until the batch is `completed` (finalize);
4. download the output (and error) file and check every custom_id came back exactly once.
With a LagRecorder, the answer → ledger lag of step 1 and of steps 2–3 (lines and probe) is kept per phase.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import requests

from bench.cpu import CpuMeter
from bench.cpu import describe as describe_cpu
from bench.lag import LagRecorder, phase_line
from bench.loadgen import MODEL, PROMPT, LevelResult, run_level
from bench.processes import BenchError, Child

FINAL = ("completed", "failed", "expired", "cancelled")


def poll_interval(lines: int) -> float:
    """Seconds between two GET /v1/batches/{id}: the drain's timing resolution (each poll is a COUNT … GROUP BY)."""
    return 0.25 if lines <= 2000 else 0.5


def input_file(lines: int) -> tuple[bytes, list[str]]:
    """The batch input: `lines` chat completions like the load generator's, each with its own custom_id."""
    ids = [f"bench-{i:06d}" for i in range(lines)]
    out = []
    for i, custom_id in enumerate(ids):
        body = {"model": MODEL, "messages": [{"role": "user", "content": f"{PROMPT} (#{i})"}], "max_tokens": 32}
        out.append(
            json.dumps(
                {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body},
                separators=(",", ":"),
            )
        )
    return ("\n".join(out) + "\n").encode(), ids


class Api:
    """Plain `requests` against the proxy's /v1 routes with one key."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.base = base_url.rstrip("/") + "/v1"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {api_key}"

    def call(self, method: str, path: str, *, timeout: float = 30.0, **kwargs) -> requests.Response:
        resp = self.session.request(method, self.base + path, timeout=timeout, **kwargs)
        if resp.status_code >= 400:
            raise BenchError(f"{method} /v1{path} answered {resp.status_code}: {resp.text[:500]}")
        return resp

    def close(self) -> None:
        self.session.close()


def _crossing(timeline: list[tuple[float, int]], target: float) -> float | None:
    """When the number of ended lines reached `target`, interpolated between two polls."""
    prev_t, prev_n = 0.0, 0
    for t, n in timeline:
        if n >= target:
            if n == prev_n:
                return t
            return prev_t + (t - prev_t) * (target - prev_n) / (n - prev_n)
        prev_t, prev_n = t, n
    return None


def verify_output(api: Api, batch: dict, ids: list[str]) -> dict:
    """Download the output and error files; count lines, unique custom_ids, and lines without a 200."""
    output = (
        api.call("GET", f"/files/{batch['output_file_id']}/content", timeout=600).content
        if batch.get("output_file_id")
        else b""
    )
    errors = (
        api.call("GET", f"/files/{batch['error_file_id']}/content", timeout=600).content
        if batch.get("error_file_id")
        else b""
    )
    seen: list[str] = []
    ok = 0
    bad_samples: list[str] = []
    out_lines = [line for line in output.splitlines() if line.strip()]
    err_lines = [line for line in errors.splitlines() if line.strip()]
    unparsable = 0
    for line in (*out_lines, *err_lines):
        try:
            item = json.loads(line)
        except ValueError:
            unparsable += 1
            continue
        seen.append(item.get("custom_id"))
        response = item.get("response") or {}
        if response.get("status_code") == 200 and item.get("error") is None:
            ok += 1
        elif len(bad_samples) < 3:
            bad_samples.append(line[:300].decode(errors="replace"))
    unique = set(seen)
    return {
        "output_lines": len(out_lines),
        "error_file_lines": len(err_lines),
        "unparsable_lines": unparsable,
        "custom_ids_unique": len(unique),
        "custom_ids_duplicated": len(seen) - len(unique),
        "custom_ids_missing": len(set(ids) - unique),
        "custom_ids_unknown": len(unique - set(ids)),
        "ok_lines": ok,
        "errors": len(ids) - ok,
        "error_samples": bad_samples,
        "output_bytes": len(output),
    }


def run_batch(
    base_url: str,
    api_key: str,
    *,
    lines: int,
    latency_ms: float,
    procs: int,
    threads: int,
    probe_requests: int,
    probe_warmup: int,
    probe_gap_s: float,
    timeout_s: float,
    stall_s: float,
    watch: list[Child],
    meter_factory: Callable[[], CpuMeter],
    lag: LagRecorder | None = None,
) -> dict:
    """Run the whole scenario (see the module docstring); the figures, JSON-ready except the probe results."""
    v1 = base_url.rstrip("/") + "/v1"
    for child in watch:
        child.check_alive()

    # 1. The probe on the idle system.
    if lag is not None:
        lag.begin()
    meter = meter_factory()
    before: list[dict | None] = []
    idle = run_level(
        v1,
        api_key,
        stream=False,
        concurrency=1,
        requests_per_thread=probe_requests,
        warmup_per_thread=probe_warmup,
        think_s=probe_gap_s,
        on_start=lambda: before.append(meter.snapshot()),
    )
    idle.cpu = CpuMeter.delta(
        before[0] if before else None, meter.snapshot(), wall_s=idle.duration_s, requests=idle.requests
    )
    print(
        f"  probe idle     {idle.requests:5d} ok {idle.errors:3d} err  latency p50 {_ms(idle.latency_ms.p50)}  "
        f"p99 {_ms(idle.latency_ms.p99)}",
        flush=True,
    )
    if lag is not None:
        sent = idle.requests + idle.errors + probe_warmup
        print(f"        {phase_line(lag.end('batch: probe idle', sent))}", flush=True)
        lag.begin()

    # 2. Upload and create.
    content, ids = input_file(lines)
    api = Api(base_url, api_key)
    try:
        t0 = time.perf_counter()
        uploaded = api.call(
            "POST",
            "/files",
            timeout=600,
            data={"purpose": "batch"},
            files={"file": ("bench-batch.jsonl", content, "application/jsonl")},
        ).json()
        t1 = time.perf_counter()
        batch = api.call(
            "POST",
            "/batches",
            timeout=600,
            json={
                "input_file_id": uploaded["id"],
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
                "metadata": {"bench": "batch"},
            },
        ).json()
        # The batch is `validating` until a `batch` worker has read and stored its lines: creation ends then.
        while batch.get("status") == "validating" and time.perf_counter() - t1 < timeout_s:
            time.sleep(0.05)
            batch = api.call("GET", f"/batches/{batch['id']}").json()
        created = time.perf_counter()
        upload_s, create_s = t1 - t0, created - t1
        if batch.get("status") not in ("in_progress", "finalizing", "completed"):
            raise BenchError(
                f"the batch was not accepted: status {batch.get('status')!r}, "
                f"errors {json.dumps(batch.get('errors'))[:500]}"
            )
        print(
            f"  batch {batch['id']}: {lines} lines ({len(content) / 1e6:.1f} MB) uploaded in {upload_s:.2f} s, "
            f"created in {create_s:.2f} s; draining …",
            flush=True,
        )

        # 3. Drain, with the probe running beside it.
        drain_meter = meter_factory()
        cpu_before = drain_meter.snapshot()
        stop = threading.Event()
        probe_box: dict = {}

        def probe() -> None:
            try:
                probe_box["result"] = run_level(
                    v1,
                    api_key,
                    stream=False,
                    concurrency=1,
                    requests_per_thread=10**9,
                    warmup_per_thread=0,
                    stop=stop,
                    think_s=probe_gap_s,
                )
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                probe_box["error"] = exc

        prober = threading.Thread(target=probe, name="probe", daemon=True)
        prober.start()
        poll_s = poll_interval(lines)
        timeline: list[tuple[float, int]] = []  # (seconds since created, lines ended)
        drained_at = final_at = None
        cpu_drained = None
        last_progress, last_n, next_report = time.perf_counter(), -1, 10.0
        try:
            while True:
                for child in watch:
                    child.check_alive()
                state = api.call("GET", f"/batches/{batch['id']}").json()
                now = time.perf_counter()
                counts = state.get("request_counts") or {}
                ended = int(counts.get("completed", 0)) + int(counts.get("failed", 0))
                timeline.append((now - created, ended))
                if ended != last_n:
                    last_progress, last_n = now, ended
                if drained_at is None and (
                    ended >= lines or state["status"] in FINAL or state["status"] == "finalizing"
                ):
                    drained_at = now
                    cpu_drained = drain_meter.snapshot()
                    stop.set()
                if state["status"] in FINAL:
                    final_at, batch = now, state
                    break
                if now - created > timeout_s:
                    raise BenchError(
                        f"the batch did not end within {timeout_s:.0f} s "
                        f"({ended}/{lines} lines ended, status {state['status']})"
                    )
                if now - last_progress > stall_s:
                    tails = "".join(f"\n--- {c.name} ({c.log_path}):\n{c.tail(15)}" for c in watch)
                    raise BenchError(
                        f"the batch made no progress for {stall_s:.0f} s "
                        f"({ended}/{lines} lines ended, status {state['status']}){tails}"
                    )
                if now - created >= next_report:
                    rate = ended / (now - created)
                    print(
                        f"    {now - created:6.1f} s: {ended:6d}/{lines} lines ended ({rate:.1f} lines/s)", flush=True
                    )
                    next_report += 10.0 if lines <= 2000 else 30.0
                time.sleep(poll_s)
        finally:
            stop.set()
            prober.join(120)
        if "error" in probe_box:
            raise BenchError(f"the probe failed: {probe_box['error']!r}")
        during: LevelResult = probe_box["result"]
        drain_s = drained_at - created
        during.cpu = None  # the drain's CPU account is the batch's (below), per line
        cpu = CpuMeter.delta(cpu_before, cpu_drained, wall_s=drain_s, requests=lines)
        # The same poll saw the last lines end and the batch final: finalizing took less than a poll interval.
        finalize_s = final_at - drained_at if final_at > drained_at else None
        print(
            f"  batch {batch['status']}: drained in {drain_s:.1f} s ({lines / drain_s:.1f} lines/s), finalized "
            + (f"{finalize_s:.1f} s later" if finalize_s is not None else f"within the same {poll_s:g} s poll"),
            flush=True,
        )
        if cpu:
            print(f"        per line: {describe_cpu(cpu)}", flush=True)
        print(
            f"  probe draining {during.requests:5d} ok {during.errors:3d} err  latency p50 "
            f"{_ms(during.latency_ms.p50)}  p99 {_ms(during.latency_ms.p99)}",
            flush=True,
        )
        if lag is not None:
            sent = lines + during.requests + during.errors
            print(f"        {phase_line(lag.end('batch: drain (lines + probe)', sent))}", flush=True)

        # 4. The results.
        check = verify_output(api, batch, ids) if batch["status"] == "completed" else {}
    finally:
        api.close()

    ideal = procs * threads / (latency_ms / 1000.0)
    t10, t90 = _crossing(timeline, 0.1 * lines), _crossing(timeline, 0.9 * lines)
    steady = (0.8 * lines / (t90 - t10)) if t10 is not None and t90 is not None and t90 > t10 else None
    rate = lines / drain_s if drain_s > 0 else None
    cores = None
    if cpu and rate:
        # How many cores each component kept busy while the batch drained (1.0 = one core all the time).
        cores = {k: round(v * rate / 1000.0, 2) for k, v in cpu["cpu_ms_per_request"].items()}
    return {
        "batch_id": batch["id"],
        "status": batch["status"],
        "lines": lines,
        "input_bytes": len(content),
        "procs": procs,
        "threads": threads,
        "latency_ms": latency_ms,
        "ideal_lines_per_s": ideal,
        "upload_s": upload_s,
        "create_s": create_s,
        "drain_s": drain_s,
        "finalize_s": finalize_s,
        "poll_s": poll_s,
        "lines_per_s": rate,
        "steady_lines_per_s": steady,
        "steady_window_s": [t10, t90],
        "end_to_end_lines_per_s": lines / (final_at - created),
        "request_counts": batch.get("request_counts"),
        "output": check,
        "cpu": cpu,
        "cores_busy": cores,
        "timeline": [(round(t, 2), n) for t, n in timeline],
        "probe_gap_ms": probe_gap_s * 1000.0,
        "probe_idle": idle,
        "probe_draining": during,
    }


def _ms(value: float | None) -> str:
    return "   -    " if value is None else f"{value:6.1f} ms"
