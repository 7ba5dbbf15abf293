"""`python -m bench.run`: measure the bare stub, then the same load through the proxy, and report.

Every process the bench starts is stopped when it ends, on success, failure or Ctrl-C.
"""
from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.cpu import CpuMeter, named, tree
from bench.cpu import describe as describe_cpu
from bench.loadgen import LevelResult, run_level
from bench.processes import ROOT, BenchError, Child, ProcessSet
from bench.proxy import DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, Proxy, ProxyConfig
from bench.report import build_report, render, write_json
from bench.stub import reset_stub, start_stub

RESULTS_DIR = ROOT / "bench" / "results"
STUB_KEY = "sk-bench"

# Defaults for this 2-core machine, where the stub, the load generator, PostgreSQL and Redis share the
# same two cores with the proxy. A Python process runs Python code on one core at a time (the GIL), while
# most of a proxied request's wall time is waiting (Redis, PostgreSQL, the upstream), which threads overlap:
# - gunicorn: 2 processes (gunicorn_conf.py's own default here: one per core) × 32 threads. A sync request
#   holds its thread while it waits for the worker's hand-off, so threads carry the concurrency; 32 per
#   process covers c=20 with room even if one process gets most connections.
# - celery: 2 processes × 16 threads. The worker is the proxy's biggest CPU user per request (ORM work on
#   ~20 PostgreSQL round trips, Celery/kombu bookkeeping), so a single process saturates its one core
#   (GIL) long before the machine does; two processes let it use both cores, and 16 threads each still
#   keep 32 upstream calls in flight. More processes than cores only add broker polling and memory.
DEFAULT_LEVELS = (1, 20)
DEFAULT_REQUESTS = 200  # per client thread and level: c=1 → 200 requests, c=20 → 4000
DEFAULT_WARMUP = 5
QUICK_REQUESTS = 15
QUICK_WARMUP = 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=50.0, help="stub upstream latency (default 50)")
    parser.add_argument("--requests", type=int, default=None,
                        help=f"measured requests per client thread and level (default {DEFAULT_REQUESTS}; "
                             f"so c=20 sends 20× as many as c=1)")
    parser.add_argument("--warmup", type=int, default=None,
                        help=f"warm-up requests per client thread before measuring (default {DEFAULT_WARMUP})")
    parser.add_argument("--concurrency", default=",".join(map(str, DEFAULT_LEVELS)),
                        help="comma-separated client thread counts (default 1,20)")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    parser.add_argument("--web-threads", type=int, default=32, help="gunicorn threads per worker (default 32)")
    parser.add_argument("--worker-procs", type=int, default=2, help="celery worker processes (default 2)")
    parser.add_argument("--worker-threads", type=int, default=16, help="threads per celery worker (default 16)")
    parser.add_argument("--worker-loglevel", default="info",
                        help="celery --loglevel (default info, as the Procfile runs it)")
    parser.add_argument("--access-log", action="store_true", help="keep gunicorn's access log on (default off)")
    parser.add_argument("--database-url", default=None,
                        help=f"PostgreSQL for the proxy (default {DEFAULT_DATABASE_URL}, recreated on every run; "
                             "a URL given here is created if missing but never dropped)")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL,
                        help=f"Redis for the proxy, a database of its own: it is flushed (default {DEFAULT_REDIS_URL})")
    parser.add_argument("--modes", default="sync,stream", help="which request kinds to run (default sync,stream)")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "latest.json", help="where to write the JSON")
    parser.add_argument("--quick", action="store_true",
                        help=f"a short smoke run ({QUICK_REQUESTS} requests per thread, {QUICK_WARMUP} warm-up)")
    args = parser.parse_args(argv)
    try:
        args.levels = sorted({int(c) for c in args.concurrency.split(",") if c.strip()})
    except ValueError:
        parser.error("--concurrency takes comma-separated integers, e.g. 1,20")
    if not args.levels or args.levels[0] < 1:
        parser.error("--concurrency levels must be positive")
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not args.modes or set(args.modes) - {"sync", "stream"}:
        parser.error("--modes takes sync, stream or both")
    if args.requests is None:
        args.requests = QUICK_REQUESTS if args.quick else DEFAULT_REQUESTS
    if args.warmup is None:
        args.warmup = QUICK_WARMUP if args.quick else DEFAULT_WARMUP
    if min(args.requests, args.web_workers, args.web_threads, args.worker_procs, args.worker_threads) < 1:
        parser.error("counts must be positive")
    return args


def measure(label: str, base_url: str, api_key: str, args: argparse.Namespace,
            watch: list[Child], meter: CpuMeter) -> dict[str, dict[int, LevelResult]]:
    """Run every (mode, level) against one target, printing a line per level."""
    results: dict[str, dict[int, LevelResult]] = {}
    for mode in args.modes:
        for c in args.levels:
            for child in watch:
                child.check_alive()
            before: list[dict | None] = []
            res = run_level(base_url, api_key, stream=mode == "stream", concurrency=c,
                            requests_per_thread=args.requests, warmup_per_thread=args.warmup,
                            on_start=lambda: before.append(meter.snapshot()))
            res.cpu = CpuMeter.delta(before[0] if before else None, meter.snapshot(), wall_s=res.duration_s,
                                     requests=res.requests)
            results.setdefault(mode, {})[c] = res
            figure = res.ttft_ms if mode == "stream" else res.latency_ms
            name = "TTFT" if mode == "stream" else "latency"
            print(f"  {label:5} {mode:6} c={c:<3} {res.requests:5d} ok {res.errors:3d} err  "
                  f"{res.throughput_rps:7.1f} req/s  {name} p50 {_ms(figure.p50)}  p99 {_ms(figure.p99)}", flush=True)
            if res.cpu:
                print(f"        {describe_cpu(res.cpu)}", flush=True)
    return results


def _ms(value: float | None) -> str:
    return "   -    " if value is None else f"{value:6.1f} ms"


def _machine() -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()], "git_commit": commit}


def _raise_interrupt(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    machine = _machine()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    procs = ProcessSet(RESULTS_DIR / "logs", env)
    # Ctrl-C stops the bench even when it was started with SIGINT ignored (a background job of a script).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_interrupt)
    config = ProxyConfig(
        database_url=args.database_url or DEFAULT_DATABASE_URL, fresh_database=args.database_url is None,
        redis_url=args.redis_url, web_workers=args.web_workers, web_threads=args.web_threads,
        worker_procs=args.worker_procs, worker_threads=args.worker_threads, access_log=args.access_log,
        worker_loglevel=args.worker_loglevel)
    if machine["loadavg_at_start"][0] > 0.5 * (machine["cpus"] or 1):
        print(f"bench: note: load average is {machine['loadavg_at_start'][0]} before starting; "
              "other work on this machine will skew the figures", file=sys.stderr)
    started = time.monotonic()
    report = None
    try:
        proxy = Proxy(procs, config)
        proxy.prepare()  # first, so a wrong --database-url/--redis-url fails before anything runs
        print(f"starting the stub upstream ({args.latency_ms:g} ms) …", flush=True)
        stub, stub_url = start_stub(procs, latency_ms=args.latency_ms)
        print(f"measuring the bare stub at {stub_url}", flush=True)
        services = {"postgres": named("postgres"), "redis": named("redis-server")}
        stub_cpu = {"stub": tree(lambda: stub.pid), **services}
        stub_results = measure("stub", stub_url, STUB_KEY, args, [stub], CpuMeter(stub_cpu))
        reset_stub(stub_url)

        print("starting the proxy (setup: migrate + seed, providers → stub, key; workers; web) …", flush=True)
        proxy.setup(stub_url)
        proxy.start()
        print(f"measuring the proxy at {proxy.url}", flush=True)
        proxy_cpu = {"web": tree(lambda: proxy.web.pid),
                     **{w.name: tree(lambda w=w: w.pid) for w in proxy.workers}, **stub_cpu}
        proxy_results = measure("proxy", proxy.url + "/v1", proxy.key, args, [stub, *proxy.workers, proxy.web],
                                CpuMeter(proxy_cpu))

        report = build_report(
            config={"latency_ms": args.latency_ms, "levels": args.levels, "modes": args.modes,
                    "requests_per_thread": args.requests, "warmup_per_thread": args.warmup, "quick": args.quick,
                    "duration_s": round(time.monotonic() - started, 1)},
            machine=machine, proxy_topology=proxy.describe(), stub=stub_results, proxy=proxy_results)
        write_json(report, args.output)
    except KeyboardInterrupt:
        print("\nbench: interrupted; stopping everything it started", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    finally:
        # A second Ctrl-C must not cut the cleanup short (and every child dies with us anyway: PDEATHSIG).
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        procs.stop_all()
    print()
    print(render(report))
    print(f"\nwrote {args.output}  (process logs: {RESULTS_DIR / 'logs'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
