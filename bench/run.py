"""`python -m bench.run`: measure the bare stub, then the same load through the proxy, and report.

Scenario groups (`--scenarios`, default all, in this order in one run):
  base       the bare stub, then the same sync/stream load through the proxy (with `--peer litellm`,
             through LiteLLM's proxy too, between the two: a three-way table and the goals relative to it)
  admission  sync load through the proxy with a key without limits and with generous limits
  batch      a big batch via /v1/files + /v1/batches on separate `batch` workers, with a sync probe

Around every measured phase of the proxy, GET /metrics is scraped for the answer → ledger lag (bench/lag.py).

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

from bench import admission as admission_scenario
from bench import batch as batch_scenario
from bench import peer_litellm
from bench.cpu import CpuMeter, named, tree
from bench.cpu import describe as describe_cpu
from bench.lag import LagRecorder, phase_line
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
# - celery: 2 processes × 16 threads. The worker is the proxy's biggest CPU user per request (Celery/kombu
#   bookkeeping and late acks, the `requests` call, claim and billing statements), so one process saturates its core
#   (GIL) long before the machine does; two processes let it use both cores, and 16 threads each still
#   keep 32 upstream calls in flight. More processes than cores only add broker polling and memory.
DEFAULT_LEVELS = (1, 20)
DEFAULT_REQUESTS = 200  # per client thread and level: c=1 → 200 requests, c=20 → 4000
DEFAULT_WARMUP = 5
QUICK_REQUESTS = 15
QUICK_WARMUP = 2
SCENARIOS = ("base", "admission", "batch")
PEERS = ("litellm",)
# The batch scenario: the Procfile's topology (one `interactive` worker process, `batch` worker processes: one
# per core by default, so the batch's Python work is not held to one core by the GIL).
DEFAULT_BATCH_LINES = 10_000
QUICK_BATCH_LINES = 500
DEFAULT_BATCH_THREADS = 16
DEFAULT_PROBE_REQUESTS = 200  # the idle probe; the probe during the drain runs until the batch has drained
QUICK_PROBE_REQUESTS = 30


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=50.0, help="stub upstream latency (default 50)")
    parser.add_argument(
        "--requests",
        type=int,
        default=None,
        help=f"measured requests per client thread and level (default {DEFAULT_REQUESTS}; "
        f"so c=20 sends 20× as many as c=1)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help=f"warm-up requests per client thread before measuring (default {DEFAULT_WARMUP})",
    )
    parser.add_argument(
        "--concurrency",
        default=",".join(map(str, DEFAULT_LEVELS)),
        help="comma-separated client thread counts (default 1,20)",
    )
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    parser.add_argument("--web-threads", type=int, default=32, help="gunicorn threads per worker (default 32)")
    parser.add_argument("--worker-procs", type=int, default=2, help="celery worker processes (default 2)")
    parser.add_argument("--worker-threads", type=int, default=16, help="threads per celery worker (default 16)")
    parser.add_argument(
        "--worker-loglevel", default="info", help="celery --loglevel (default info, as the Procfile runs it)"
    )
    parser.add_argument("--access-log", action="store_true", help="keep gunicorn's access log on (default off)")
    parser.add_argument(
        "--database-url",
        default=None,
        help=f"PostgreSQL for the proxy (default {DEFAULT_DATABASE_URL}, recreated on every run; "
        "a URL given here is created if missing but never dropped)",
    )
    parser.add_argument(
        "--redis-url",
        default=DEFAULT_REDIS_URL,
        help=f"Redis for the proxy, a database of its own: it is flushed (default {DEFAULT_REDIS_URL})",
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help="comma-separated scenario groups: base (stub vs proxy, sync and stream), admission "
        "(key without vs with limits), batch (files + batches API, sync probe while it drains); "
        "default all",
    )
    parser.add_argument(
        "--modes", default="sync,stream", help="which request kinds the base scenario runs (default sync,stream)"
    )
    parser.add_argument(
        "--peer",
        choices=PEERS,
        default=None,
        help="also measure another gateway in the base scenario, between the stub and the proxy, with the same "
        f"load: litellm (LiteLLM's proxy {peer_litellm.LITELLM_VERSION}, installed on first use into "
        "bench/.litellm-venv/; default none)",
    )
    parser.add_argument(
        "--batch-lines",
        type=int,
        default=None,
        help=f"lines of the batch scenario's input file (default {DEFAULT_BATCH_LINES}; --quick: {QUICK_BATCH_LINES})",
    )
    parser.add_argument(
        "--batch-procs",
        type=int,
        default=os.cpu_count() or 1,
        help="`batch` Celery worker processes of the batch scenario (default: one per core, "
        f"{os.cpu_count() or 1} here); the ideal is procs × threads / stub latency",
    )
    parser.add_argument(
        "--batch-threads",
        type=int,
        default=DEFAULT_BATCH_THREADS,
        help=f"threads of each `batch` Celery worker process (default {DEFAULT_BATCH_THREADS})",
    )
    parser.add_argument(
        "--batch-interactive-procs",
        type=int,
        default=1,
        help="`interactive` worker processes during the batch scenario (default 1, as the Procfile; "
        "extra ones of the other scenarios are stopped first)",
    )
    parser.add_argument(
        "--batch-timeout",
        type=float,
        default=3600.0,
        help="give up if the batch has not ended after this many seconds (default 3600)",
    )
    parser.add_argument(
        "--batch-stall",
        type=float,
        default=120.0,
        help="give up if no line of the batch ends for this many seconds (default 120)",
    )
    parser.add_argument(
        "--beat",
        action="store_true",
        help="also run `celery beat` during the batch scenario (default off: nothing it does is "
        "needed by a healthy batch; it re-sends lost lines and finalizes stalled batches)",
    )
    parser.add_argument(
        "--probe-requests",
        type=int,
        default=None,
        help=f"requests of the idle probe of the batch scenario (default {DEFAULT_PROBE_REQUESTS}; "
        f"--quick: {QUICK_PROBE_REQUESTS})",
    )
    parser.add_argument(
        "--probe-gap-ms",
        type=float,
        default=50.0,
        help="pause between two probe requests (default 50 ms: a light, steady caller)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "latest.json", help="where to write the JSON")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a short smoke run ({QUICK_REQUESTS} requests per thread, {QUICK_WARMUP} warm-up, "
        f"a {QUICK_BATCH_LINES}-line batch)",
    )
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
    chosen = {x.strip() for x in args.scenarios.split(",") if x.strip()}
    if not chosen or chosen - set(SCENARIOS):
        parser.error(f"--scenarios takes one or more of {', '.join(SCENARIOS)}")
    args.scenarios = [x for x in SCENARIOS if x in chosen]
    if args.peer and "base" not in args.scenarios:
        parser.error("--peer is measured in the base scenario: add base to --scenarios")
    if args.requests is None:
        args.requests = QUICK_REQUESTS if args.quick else DEFAULT_REQUESTS
    if args.warmup is None:
        args.warmup = QUICK_WARMUP if args.quick else DEFAULT_WARMUP
    if args.batch_lines is None:
        args.batch_lines = QUICK_BATCH_LINES if args.quick else DEFAULT_BATCH_LINES
    if args.probe_requests is None:
        args.probe_requests = QUICK_PROBE_REQUESTS if args.quick else DEFAULT_PROBE_REQUESTS
    if (
        min(
            args.requests,
            args.web_workers,
            args.web_threads,
            args.worker_procs,
            args.worker_threads,
            args.batch_lines,
            args.batch_procs,
            args.batch_threads,
            args.batch_interactive_procs,
            args.probe_requests,
        )
        < 1
    ):
        parser.error("counts must be positive")
    if args.probe_gap_ms < 0 or args.batch_timeout <= 0 or args.batch_stall <= 0:
        parser.error("--probe-gap-ms must be ≥ 0, --batch-timeout and --batch-stall positive")
    return args


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


def measure_peer(procs: ProcessSet, stub: Child, stub_url: str, stub_cpu: dict, args: argparse.Namespace) -> dict:
    """Start the peer in front of the stub, measure it as the stub and the proxy are, stop it; its report part.

    It runs alone: started after the stub was measured and stopped before the proxy starts, so no level of
    one target shares the cores with another target's idle processes.
    """
    print(f"starting LiteLLM's proxy {peer_litellm.LITELLM_VERSION} (1 worker) in front of the stub …", flush=True)
    litellm = peer_litellm.start_litellm(procs, stub_url=stub_url, config_dir=procs.log_dir, access_log=args.access_log)
    try:
        print(f"measuring litellm at {litellm.url}", flush=True)
        meter = CpuMeter({"litellm": tree(lambda: litellm.pid), **stub_cpu})
        results = measure("litellm", litellm.url, litellm.key, args, [stub, litellm.child], meter)
    finally:
        litellm.stop()
    return {
        "name": "litellm",
        "version": peer_litellm.LITELLM_VERSION,
        "command": litellm.command,
        "results": results,
    }


def _ms(value: float | None) -> str:
    return "   -    " if value is None else f"{value:6.1f} ms"


def _machine() -> dict:
    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "git_commit": commit,
    }


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
        database_url=args.database_url or DEFAULT_DATABASE_URL,
        fresh_database=args.database_url is None,
        redis_url=args.redis_url,
        web_workers=args.web_workers,
        web_threads=args.web_threads,
        worker_procs=args.worker_procs,
        worker_threads=args.worker_threads,
        access_log=args.access_log,
        worker_loglevel=args.worker_loglevel,
        batch_procs=args.batch_procs,
        batch_threads=args.batch_threads,
    )
    if machine["loadavg_at_start"][0] > 0.5 * (machine["cpus"] or 1):
        print(
            f"bench: note: load average is {machine['loadavg_at_start'][0]} before starting; "
            "other work on this machine will skew the figures",
            file=sys.stderr,
        )
    started = time.monotonic()
    report = None
    scenarios = args.scenarios
    try:
        proxy = Proxy(procs, config)
        proxy.prepare()  # first, so a wrong --database-url/--redis-url fails before anything runs
        if args.peer:
            # Before anything is measured: the first install takes minutes of CPU, and a failed one ends the run now.
            peer_litellm.ensure_installed()
        print(f"scenarios: {', '.join(scenarios)}", flush=True)
        print(f"starting the stub upstream ({args.latency_ms:g} ms) …", flush=True)
        stub, stub_url = start_stub(procs, latency_ms=args.latency_ms)
        services = {"postgres": named("postgres"), "redis": named("redis-server")}
        stub_cpu = {"stub": tree(lambda: stub.pid), **services}
        stub_results: dict[str, dict[int, LevelResult]] = {}
        if "base" in scenarios:
            print(f"measuring the bare stub at {stub_url}", flush=True)
            stub_results = measure("stub", stub_url, STUB_KEY, args, [stub], CpuMeter(stub_cpu))
        admission_stub: dict[int, LevelResult] = {}
        if "admission" in scenarios:
            admission_stub = {c: r for c, r in stub_results.get("sync", {}).items() if c in args.levels}
            if set(admission_stub) != set(args.levels):
                print(f"measuring the bare stub (sync, for the admission scenario) at {stub_url}", flush=True)
                admission_stub = measure("stub", stub_url, STUB_KEY, args, [stub], CpuMeter(stub_cpu), modes=["sync"])[
                    "sync"
                ]
        reset_stub(stub_url)

        peer = None
        if args.peer:
            peer = measure_peer(procs, stub, stub_url, stub_cpu, args)
            reset_stub(stub_url)

        print("starting the proxy (setup: migrate + seed, providers → stub, keys; workers; web) …", flush=True)
        proxy.setup(stub_url)
        limited_key = None
        if "admission" in scenarios:
            limited_key = proxy.create_key(
                "limited",
                rpm=admission_scenario.LIMITS["rpm"],
                tpm=admission_scenario.LIMITS["tpm"],
                budget_usd=admission_scenario.LIMITS["budget_usd"],
            )
        interactive_only = "base" in scenarios or "admission" in scenarios
        proxy.start(interactive_procs=None if interactive_only else args.batch_interactive_procs)
        lag = LagRecorder(proxy.url + "/metrics")

        def proxy_meter() -> CpuMeter:
            # Built per phase: the set of worker processes changes between scenarios.
            components = {
                "web": tree(lambda: proxy.web.pid),
                **{w.name: tree(lambda w=w: w.pid) for w in proxy.workers},
            }
            components.update({w.name: tree(lambda w=w: w.pid) for w in proxy.batch_workers})
            if proxy.beat is not None:
                components["beat"] = tree(lambda: proxy.beat.pid)
            if proxy.writer is not None:
                components["writer"] = tree(lambda: proxy.writer.pid)
            return CpuMeter({**components, **stub_cpu})

        proxy_results: dict[str, dict[int, LevelResult]] = {}
        if "base" in scenarios:
            print(f"measuring the proxy at {proxy.url}", flush=True)
            proxy_results = measure(
                "proxy", proxy.url + "/v1", proxy.key, args, [stub, *proxy.children()], proxy_meter(), lag=lag
            )
            reset_stub(stub_url)

        admission = None
        if "admission" in scenarios:
            headers = admission_scenario.check_limited_key(proxy.url + "/v1", limited_key)
            print(
                f"measuring admission at {proxy.url}: key without limits vs key with limits "
                f"(x-ratelimit-limit-requests {headers.get('x-ratelimit-limit-requests')}, "
                f"-tokens {headers.get('x-ratelimit-limit-tokens')})",
                flush=True,
            )
            lag.begin()
            results = admission_scenario.run_admission(
                proxy.url + "/v1",
                {"none": proxy.key, "limits": limited_key},
                levels=args.levels,
                requests_per_thread=args.requests,
                warmup_per_thread=args.warmup,
                watch=[stub, *proxy.children()],
                meter_factory=proxy_meter,
            )
            sent = sum(r.requests + r.errors for levels in results.values() for r in levels.values())
            sent += admission_scenario.warmup_requests(args.levels, args.requests, args.warmup)
            print(f"        {phase_line(lag.end('admission (both keys, every level)', sent))}", flush=True)
            admission = {
                "limits": admission_scenario.LIMITS,
                "stub_sync": admission_stub,
                "results": results,
                "usage_requests": {"limits": admission_scenario.usage_requests(proxy.url, limited_key)},
            }
            reset_stub(stub_url)

        batch = None
        if "batch" in scenarios:
            proxy.keep_interactive(args.batch_interactive_procs)
            print(
                f"starting {args.batch_procs} batch worker(s) (-Q batch -c {args.batch_threads} each)"
                f"{' and beat' if args.beat else ''}; `interactive`: {len(proxy.workers)} process(es)",
                flush=True,
            )
            proxy.start_batch_workers(beat=args.beat)
            print(f"measuring a {args.batch_lines}-line batch at {proxy.url} (probe idle first)", flush=True)
            batch = batch_scenario.run_batch(
                proxy.url,
                proxy.key,
                lines=args.batch_lines,
                latency_ms=args.latency_ms,
                procs=len(proxy.batch_workers),
                threads=proxy.config.batch_threads,
                probe_requests=args.probe_requests,
                probe_warmup=args.warmup,
                probe_gap_s=args.probe_gap_ms / 1000.0,
                timeout_s=args.batch_timeout,
                stall_s=args.batch_stall,
                watch=[stub, *proxy.children()],
                meter_factory=proxy_meter,
                lag=lag,
            )
            batch.update(
                {"interactive_procs": len(proxy.workers), "interactive_threads": args.worker_threads, "beat": args.beat}
            )

        report = build_report(
            config={
                "scenarios": scenarios,
                "latency_ms": args.latency_ms,
                "levels": args.levels,
                "modes": args.modes,
                "requests_per_thread": args.requests,
                "warmup_per_thread": args.warmup,
                "quick": args.quick,
                "batch_lines": args.batch_lines,
                "batch_procs": args.batch_procs,
                "batch_threads": args.batch_threads,
                "probe_requests": args.probe_requests,
                "probe_gap_ms": args.probe_gap_ms,
                "duration_s": round(time.monotonic() - started, 1),
                **({"peer": args.peer} if args.peer else {}),
            },
            machine=machine,
            proxy_topology=proxy.describe(),
            stub=stub_results,
            proxy=proxy_results,
            admission=admission,
            batch=batch,
            peer=peer,
            record_lag=lag.phases,
        )
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
