"""The peers' part of the report (`--peer`, `report["peers"]`): the bare stub, each peer and the gateway under the
same load in one run, a row each; with `litellm`, the issue's goals for the gateway relative to it, each met or
not; with `floor`, how far the gateway is from its stack's floor (bench/floor_report.py, informational)."""

from __future__ import annotations

from bench import tables
from bench.loadgen import LevelResult

# The goals relative to a peer (LiteLLM's proxy measured in the same run): what the gateway must reach to be
# worth running instead of it. Latency goals at the lowest concurrency (the cost of one request, no queueing),
# CPU and throughput goals at the highest (where the cores run out).
PEER_CPU_RATIO_MAX = 0.4  # sync: gateway server CPU per request ÷ the peer's
PEER_ADDED_P50_RATIO_MAX = 0.35  # sync: gateway added p50 ÷ the peer's
PEER_ADDED_P50_MS_MAX = 5.0  # sync: gateway added p50, absolute
PEER_TTFT_RATIO_MAX = 0.35  # streams: gateway added TTFT p50 ÷ the peer's
PEER_THROUGHPUT_RATIO_MIN = 2.5  # sync: gateway req/s ÷ the peer's
PEER_STUB_THROUGHPUT_RATIO_MIN = 0.6  # sync: gateway req/s ÷ the bare stub's
# CPU components that are not part of serving a request: the load generator (client) and the upstream.
NOT_SERVING = ("loadgen", "stub")
GOALS_PEER = "litellm"  # the peer the goals are relative to

Results = dict[str, dict[int, LevelResult]]  # mode -> concurrency -> result


def server_cpu_ms(cpu: dict | None) -> float | None:
    """The machine's CPU ms per request less the client's and the stub's: what serving it cost, all told.

    Whatever else ran is in it (PostgreSQL, Redis, `other`): a gateway that pushes work into its database or
    into processes the meter does not name still pays for it here.
    """
    if not cpu:
        return None
    return sum(v for k, v in cpu["cpu_ms_per_request"].items() if k not in NOT_SERVING)


def _per_process(cpu: dict | None) -> dict[str, float]:
    """CPU ms per request by process: the target's own first, workers summed as in the CPU table, then the rest."""
    if not cpu:
        return {}
    per: dict[str, float] = {}
    for k, v in cpu["cpu_ms_per_request"].items():
        name = "worker" if k.startswith("worker") else k
        per[name] = round(per.get(name, 0.0) + v, 3)
    shared = ("postgres", "redis", "other", *NOT_SERVING)
    return {k: per[k] for k in [*(k for k in per if k not in shared), *(k for k in shared if k in per)]}


def figure(lvl: LevelResult):
    """The latency a level is judged by: the time to the first token for streams, the whole answer for sync."""
    return lvl.ttft_ms if lvl.mode == "stream" and lvl.ttft_ms is not None else lvl.latency_ms


def target_rows(stub: Results, peers: list[tuple[str, Results]], proxy: Results) -> list[dict]:
    """Per mode and level, one row per target (stub, each peer, gateway): latency and what it adds over the stub,
    throughput and its ratio to the stub's, CPU per request per process and for serving all told."""
    rows = []
    for mode in ("sync", "stream"):
        levels = set(stub.get(mode, {})) & set(proxy.get(mode, {}))
        for _, results in peers:
            levels &= set(results.get(mode, {}))
        for c in sorted(levels):
            base = stub[mode][c]
            targets = [
                ("stub", base),
                *((name, results[mode][c]) for name, results in peers),
                ("gateway", proxy[mode][c]),
            ]
            for target, lvl in targets:
                fig, ref = figure(lvl), figure(base)
                rows.append(
                    {
                        "mode": mode,
                        "concurrency": c,
                        "target": target,
                        "figure": "TTFT" if mode == "stream" else "latency",
                        "p50_ms": fig.p50,
                        "p99_ms": fig.p99,
                        "added_p50_ms": None if lvl is base else tables.delta(ref.p50, fig.p50),
                        "added_p99_ms": None if lvl is base else tables.delta(ref.p99, fig.p99),
                        "throughput_rps": lvl.throughput_rps,
                        "throughput_vs_stub": tables.compare(base.throughput_rps, lvl.throughput_rps, "ratio"),
                        "server_cpu_ms_per_request": server_cpu_ms(lvl.cpu),
                        "cpu_ms_per_request": _per_process(lvl.cpu),
                        "errors": lvl.errors,
                    }
                )
    return rows


def _goal(
    goal: str,
    unit: str,
    gateway: float | None,
    reference: float | None,
    ref_name: str,
    *,
    kind: str,
    bound: float,
    at_most: bool,
    clean: bool,
) -> dict:
    """A goal row: the gateway's figure, the reference's, the ratio (kind "ratio") or the figure itself
    (kind "absolute") against the bound; met only if nothing involved failed a request."""
    value = gateway if kind == "absolute" else tables.compare(reference, gateway, "ratio")
    if kind == "ratio" and reference is not None and reference <= 0:
        value = None  # a reference that added nothing (or less) leaves no meaningful ratio
    met = None if value is None else clean and (value <= bound if at_most else value >= bound)
    sign = "≤" if at_most else "≥"
    return {
        "goal": goal,
        "unit": unit,
        "gateway": gateway,
        "reference": reference,
        "reference_name": ref_name,
        "kind": kind,
        "value": value,
        "target": f"{sign} {bound:g} ms" if kind == "absolute" else f"{sign} {bound:g}×",
        "met": met,
        "status": "n/a" if met is None else ("met" if met else "not met"),
    }


def peer_goals(stub: Results, peer: Results, proxy: Results, *, peer_name: str = "litellm") -> list[dict]:
    """The issue's goals for the gateway relative to the peer (and the stub), each with its bound and met or not."""

    def levels(mode: str) -> list[int]:
        return sorted(set(stub.get(mode, {})) & set(peer.get(mode, {})) & set(proxy.get(mode, {})))

    def clean(*results: LevelResult) -> bool:
        return all(r.errors == 0 for r in results)

    goals = []
    sync, stream = levels("sync"), levels("stream")
    if sync:
        high = sync[-1]
        ref, gw = peer["sync"][high], proxy["sync"][high]
        goals.append(
            _goal(
                f"sync c={high}: server CPU per request, gateway ÷ {peer_name}",
                "ms/req",
                server_cpu_ms(gw.cpu),
                server_cpu_ms(ref.cpu),
                peer_name,
                kind="ratio",
                bound=PEER_CPU_RATIO_MAX,
                at_most=True,
                clean=clean(ref, gw),
            )
        )
        low = sync[0]
        base, ref, gw = stub["sync"][low], peer["sync"][low], proxy["sync"][low]
        added = tables.delta(base.latency_ms.p50, gw.latency_ms.p50)
        goals.append(
            _goal(
                f"sync c={low}: added p50, gateway ÷ {peer_name}",
                "ms",
                added,
                tables.delta(base.latency_ms.p50, ref.latency_ms.p50),
                peer_name,
                kind="ratio",
                bound=PEER_ADDED_P50_RATIO_MAX,
                at_most=True,
                clean=clean(ref, gw),
            )
        )
        goals.append(
            _goal(
                f"sync c={low}: added p50, gateway",
                "ms",
                added,
                None,
                "",
                kind="absolute",
                bound=PEER_ADDED_P50_MS_MAX,
                at_most=True,
                clean=clean(gw),
            )
        )
    if stream:
        low = stream[0]
        base, ref, gw = stub["stream"][low], peer["stream"][low], proxy["stream"][low]
        goals.append(
            _goal(
                f"stream c={low}: added TTFT p50, gateway ÷ {peer_name}",
                "ms",
                tables.delta(figure(base).p50, figure(gw).p50),
                tables.delta(figure(base).p50, figure(ref).p50),
                peer_name,
                kind="ratio",
                bound=PEER_TTFT_RATIO_MAX,
                at_most=True,
                clean=clean(ref, gw),
            )
        )
    if sync and sync[-1] > 1:  # throughput at c=1 is latency in disguise
        high = sync[-1]
        base, ref, gw = stub["sync"][high], peer["sync"][high], proxy["sync"][high]
        goals.append(
            _goal(
                f"sync c={high}: throughput, gateway ÷ {peer_name}",
                "req/s",
                gw.throughput_rps,
                ref.throughput_rps,
                peer_name,
                kind="ratio",
                bound=PEER_THROUGHPUT_RATIO_MIN,
                at_most=False,
                clean=clean(ref, gw),
            )
        )
        goals.append(
            _goal(
                f"sync c={high}: throughput, gateway ÷ stub",
                "req/s",
                gw.throughput_rps,
                base.throughput_rps,
                "stub",
                kind="ratio",
                bound=PEER_STUB_THROUGHPUT_RATIO_MIN,
                at_most=False,
                clean=clean(gw),
            )
        )
    return goals


_WAYS = {3: "three-way", 4: "four-way"}


def render_peers(peers: dict) -> list[str]:
    """The table (stub, each peer, gateway per mode and level) and the goals vs LiteLLM, as text lines."""
    measured = peers["measured"]
    names = ", ".join(f"{p['name']} {p['version']}".rstrip() for p in measured)
    ways = _WAYS.get(len(measured) + 2, f"{len(measured) + 2}-way")
    lines = [
        f"{ways}: the bare stub, {names} and the gateway: the same load, one after the other in one run",
        *(f"{p['name']}: {p.get('command', '')}" for p in measured),
        "streams: TTFT; server CPU = the machine's − load generator − stub",
    ]
    table: list[tuple[str, ...]] = []
    for r in peers["rows"]:
        procs = " ".join(f"{k} {v:.2f}" for k, v in r["cpu_ms_per_request"].items() if v >= 0.005)
        table.append(
            (
                r["mode"],
                f"c={r['concurrency']}",
                r["target"],
                tables.num(r["p50_ms"], "ms"),
                tables.delta_text(r["added_p50_ms"], "added"),
                tables.num(r["p99_ms"], "ms"),
                tables.delta_text(r["added_p99_ms"], "added"),
                tables.num(r["throughput_rps"], "req/s"),
                tables.delta_text(r["throughput_vs_stub"], "ratio"),
                tables.num(r["server_cpu_ms_per_request"], "ms"),
                procs or "-",
            )
        )
    header = (
        "mode",
        "c",
        "target",
        "p50 ms",
        "+p50",
        "p99 ms",
        "+p99",
        "req/s",
        "×stub",
        "server CPU ms/req",
        "CPU ms/req by process",
    )
    lines.extend(tables.table(header, table, left=3, right_until=len(header) - 1))
    if peers.get("goals"):
        lines.append("")
        lines.extend(_render_goals(peers["goals_vs"], peers["goals"]))
    return lines


def _render_goals(name: str, goals: list[dict]) -> list[str]:
    rows: list[tuple[str, ...]] = []
    for g in goals:
        value = (
            "-" if g["value"] is None else (f"{g['value']:.1f} ms" if g["kind"] == "absolute" else f"{g['value']:.2f}×")
        )
        rows.append(
            (
                g["goal"],
                f"{tables.num(g['gateway'], g['unit'])} {g['unit']}",
                "-" if g["kind"] == "absolute" else f"{tables.num(g['reference'], g['unit'])} {g['unit']}",
                value,
                g["target"],
                g["status"],
            )
        )
    return [
        f"goals: the gateway vs {name} (and the bare stub), measured in this run",
        *tables.table(("goal", "gateway", "reference", "value", "bound", "result"), rows, left=1, right_until=4),
    ]


def build_peers(stub: Results, proxy: Results, peers: list[dict]) -> dict:
    """`report["peers"]`: every peer's description and results, the rows of the table and the goals vs LiteLLM
    (when it was measured; the comparison with the floor is bench/floor_report.py's).

    `peers`: [{"name", "version", "command", "results": mode -> level -> LevelResult}, …] in the order measured.
    """
    by_name = {p["name"]: p["results"] for p in peers}
    part: dict = {
        "measured": [
            {
                **{k: v for k, v in p.items() if k != "results"},
                "results": {
                    mode: {str(c): lvl.as_dict() for c, lvl in levels.items()} for mode, levels in p["results"].items()
                },
            }
            for p in peers
        ],
        "rows": target_rows(stub, [(p["name"], p["results"]) for p in peers], proxy),
    }
    if GOALS_PEER in by_name:
        goals = peer_goals(stub, by_name[GOALS_PEER], proxy, peer_name=GOALS_PEER)
        part.update(
            goals_vs=GOALS_PEER,
            goals=goals,
            goals_met=sum(g["met"] is True for g in goals),
            goals_total=len(goals),
        )
    return part


def peer_cpu_rows(peers: dict) -> list[tuple[str, dict | None, float]]:
    """(label, CPU account, requests per second) of each level of each peer, for the report's CPU table."""
    return [
        (f"{peer['name']} {mode} c={c}", lvl.get("cpu"), lvl["throughput_rps"])
        for peer in peers.get("measured", [])
        for mode, levels in peer["results"].items()
        for c, lvl in levels.items()
    ]


def peer_errors(peers: dict) -> list[str]:
    """One line per level of a peer with failed requests."""
    return [
        f"{peer['name']} {mode} c={c}: {lvl['errors']} errors, e.g. {(lvl['error_samples'] or ['?'])[0]}"
        for peer in peers.get("measured", [])
        for mode, levels in peer["results"].items()
        for c, lvl in levels.items()
        if lvl["errors"]
    ]
