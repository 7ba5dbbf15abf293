"""The command line of `python -m bench.run`: its options, their defaults, and the checks on them."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from bench import peer_litellm
from bench.peers import PEERS
from bench.processes import ROOT
from bench.proxy import DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL

RESULTS_DIR = ROOT / "bench" / "results"

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
# The batch scenario: the Procfile's topology (one `interactive` worker process, `batch` worker processes: one
# per core by default, so the batch's Python work is not held to one core by the GIL).
DEFAULT_BATCH_LINES = 10_000
QUICK_BATCH_LINES = 500
DEFAULT_BATCH_THREADS = 16
DEFAULT_PROBE_REQUESTS = 200  # the idle probe; the probe during the drain runs until the batch has drained
QUICK_PROBE_REQUESTS = 30


def parse_args(argv: list[str] | None, *, description: str = "") -> argparse.Namespace:
    """The parsed and checked options; `args.peers` is the list of peers in the order they are measured."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=description)
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
    parser.add_argument(
        "--deployments",
        type=int,
        default=1,
        help="deployments of the bench's model, all on the stub (default 1; 2+ measures choosing among them)",
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
        default="",
        metavar="NAME[,NAME]",
        help="also measure other gateways in the base scenario, between the stub and the proxy, with the same "
        "load, one after the other (comma-separated): litellm (LiteLLM's proxy "
        f"{peer_litellm.LITELLM_VERSION}, installed on first use into bench/.litellm-venv/), floor (the bare "
        "stack the proxy is built on: Flask under gunicorn, a Celery worker, Redis, none of the proxy's "
        "features; bench/floor/); default none",
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
    peers = {x.strip() for x in args.peer.split(",") if x.strip()}
    if peers - set(PEERS):
        parser.error(f"--peer takes one or more of {', '.join(PEERS)}")
    args.peers = [x for x in PEERS if x in peers]  # litellm, then floor: the table's order
    if args.peers and "base" not in args.scenarios:
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
