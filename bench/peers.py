"""`--peer`: other gateways measured in the base scenario with the same stub and load, each alone in turn.

Each peer starts after the stub was measured and stops before the gateway starts, so no level of one target
shares the cores with another target's idle processes.
"""

from __future__ import annotations

import argparse

from bench import peer_floor, peer_litellm
from bench.cpu import CpuMeter, Finder, tree
from bench.measure import measure
from bench.processes import Child, ProcessSet
from bench.proxy import ProxyConfig
from bench.stub import reset_stub

PEERS = ("litellm", "floor")  # the order they are measured in and shown


def measure_peers(
    procs: ProcessSet,
    stub: Child,
    stub_url: str,
    stub_cpu: dict[str, Finder],
    args: argparse.Namespace,
    config: ProxyConfig,
    floor_redis_url: str | None,
) -> list[dict]:
    """Measure every peer of `args.peers` in turn in front of the stub; each one's report part, in order."""
    measured = []
    for name in args.peers:
        if name == "litellm":
            measured.append(measure_litellm(procs, stub, stub_url, stub_cpu, args))
        else:
            assert floor_redis_url is not None  # peer_floor.prepare() ran at the start
            measured.append(measure_floor(procs, stub, stub_url, stub_cpu, args, config, floor_redis_url))
        reset_stub(stub_url)
    return measured


def measure_litellm(
    procs: ProcessSet, stub: Child, stub_url: str, stub_cpu: dict[str, Finder], args: argparse.Namespace
) -> dict:
    """Start LiteLLM's proxy in front of the stub, measure it as the stub and the gateway are, stop it."""
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


def measure_floor(
    procs: ProcessSet,
    stub: Child,
    stub_url: str,
    stub_cpu: dict[str, Finder],
    args: argparse.Namespace,
    config: ProxyConfig,
    redis_url: str,
) -> dict:
    """Start the floor (bench/floor/) in front of the stub with the gateway's process counts, measure it, stop it."""
    print(
        f"starting the floor (gunicorn {config.web_workers} × {config.web_threads} threads, "
        f"celery {config.worker_procs} × {config.worker_threads} threads, Redis db {peer_floor.REDIS_DB}) "
        "in front of the stub …",
        flush=True,
    )
    floor = peer_floor.start_floor(procs, stub_url=stub_url, redis_url=redis_url, config=config)
    try:
        print(f"measuring floor at {floor.url}", flush=True)

        def workers() -> list:
            return [p for w in floor.workers for p in tree(lambda w=w: w.pid)()]

        # Every worker process in one column, like the web's: the floor's two parts, as the report names them.
        meter = CpuMeter({"floor-web": tree(lambda: floor.web.pid), "floor-worker": workers, **stub_cpu})
        results = measure("floor", floor.url, floor.key, args, [stub, *floor.children()], meter)
    finally:
        floor.stop()
    return {
        "name": "floor",
        "version": "",  # not a product: its parts' versions are in "stack"
        "stack": peer_floor.stack_versions(),
        "command": floor.command,
        "results": results,
    }
