"""`python -m bench.run`: measure the bare stub, then the same load through the proxy, and report.

Scenario groups (`--scenarios`, default all, in this order in one run):
  base       the bare stub, then the same sync/stream load through the proxy; with `--peer`, through other
             gateways too, each alone in turn between the two, and a table with a row per target:
               litellm  LiteLLM's proxy (bench/peer_litellm.py), and the issue's goals relative to it
               floor    the bare stack the proxy is built on (bench/floor/: Flask under gunicorn, a Celery
                        worker, Redis; none of the proxy's features), and how far the proxy is from it
             (`--peer litellm,floor` measures both, in that order)
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

from bench import admission as admission_scenario
from bench import batch as batch_scenario
from bench import options, peer_floor, peer_litellm
from bench.cpu import CpuMeter, named, tree
from bench.lag import LagRecorder, phase_line
from bench.loadgen import LevelResult
from bench.measure import measure
from bench.options import RESULTS_DIR
from bench.peers import measure_peers
from bench.processes import ROOT, BenchError, ProcessSet
from bench.proxy import DEFAULT_DATABASE_URL, Proxy, ProxyConfig
from bench.report import build_report, render, write_json
from bench.stub import reset_stub, start_stub

STUB_KEY = "sk-bench"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (bench/options.py), described by this module's first line."""
    return options.parse_args(argv, description=(__doc__ or "").splitlines()[0])


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
    """Run the chosen scenarios, print the report and write its JSON; the process's exit status."""
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
        deployments=args.deployments,
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
        if "litellm" in args.peers:
            # Before anything is measured: the first install takes minutes of CPU, and a failed one ends the run now.
            peer_litellm.ensure_installed()
        # Flushed now, so a Redis that will not serve the floor ends the run before anything is measured.
        floor_redis_url = peer_floor.prepare(config.redis_url) if "floor" in args.peers else None
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

        peers = measure_peers(procs, stub, stub_url, stub_cpu, args, config, floor_redis_url)

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
                **({"peers": args.peers} if args.peers else {}),
            },
            machine=machine,
            proxy_topology=proxy.describe(),
            stub=stub_results,
            proxy=proxy_results,
            admission=admission,
            batch=batch,
            peers=peers,
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
