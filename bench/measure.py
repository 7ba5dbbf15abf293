"""One target measured at every (mode, level) of the run: the load, its CPU per process, a line per level."""

from __future__ import annotations

import argparse

from bench.cpu import CpuMeter
from bench.cpu import describe as describe_cpu
from bench.lag import LagRecorder, phase_line
from bench.loadgen import LevelResult, run_level
from bench.processes import Child


def measure(
    label: str,
    base_url: str,
    api_key: str,
    args: argparse.Namespace,
    watch: list[Child],
    meter: CpuMeter,
    modes: list[str] | None = None,
    lag: LagRecorder | None = None,
) -> dict[str, dict[int, LevelResult]]:
    """Run every (mode, level) against one target, printing a line per level (with `lag`, its answer → ledger)."""
    results: dict[str, dict[int, LevelResult]] = {}
    for mode in modes or args.modes:
        for c in args.levels:
            for child in watch:
                child.check_alive()
            if lag is not None:
                lag.begin()  # before the warm-up: its records are this phase's too (a clean boundary)
            before: list[dict | None] = []
            res = run_level(
                base_url,
                api_key,
                stream=mode == "stream",
                concurrency=c,
                requests_per_thread=args.requests,
                warmup_per_thread=args.warmup,
                on_start=lambda: before.append(meter.snapshot()),
            )
            res.cpu = CpuMeter.delta(
                before[0] if before else None, meter.snapshot(), wall_s=res.duration_s, requests=res.requests
            )
            results.setdefault(mode, {})[c] = res
            figure = res.ttft_ms if mode == "stream" else res.latency_ms
            name = "TTFT" if mode == "stream" else "latency"
            print(
                f"  {label:5} {mode:6} c={c:<3} {res.requests:5d} ok {res.errors:3d} err  "
                f"{res.throughput_rps:7.1f} req/s  {name} p50 {_ms(figure.p50)}  p99 {_ms(figure.p99)}",
                flush=True,
            )
            if res.cpu:
                print(f"        {describe_cpu(res.cpu)}", flush=True)
            if lag is not None:
                sent = res.requests + res.errors + c * args.warmup
                print(f"        {phase_line(lag.end(f'{label} {mode} c={c}', sent))}", flush=True)
    return results


def _ms(value: float | None) -> str:
    return "   -    " if value is None else f"{value:6.1f} ms"
