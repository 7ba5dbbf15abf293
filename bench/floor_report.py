"""`--peer floor` in the report: how far the gateway is from its stack's floor (`report["peers"]["floor"]`).

The floor (bench/floor/) is the stack the gateway is built on with none of its features, so the gateway ÷ floor
ratios say what the features cost; with LiteLLM measured too, floor ÷ LiteLLM says how much of the gap to LiteLLM
the stack itself accounts for. The same four figures as the goals vs LiteLLM, informational: no bound, no result.
"""

from __future__ import annotations

from bench import tables
from bench.loadgen import LevelResult
from bench.peer_report import Results, figure, server_cpu_ms

NAME = "floor"


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    # A denominator that added nothing (or less) leaves no meaningful ratio, as in the goals vs LiteLLM.
    if denominator is None or denominator <= 0:
        return None
    return tables.compare(denominator, numerator, "ratio")


def floor_rows(stub: Results, floor: Results, proxy: Results, *, litellm: Results | None = None) -> list[dict]:
    """Server CPU per request and throughput at the highest sync level, added p50 (sync) and added TTFT p50
    (streams) at the lowest: the gateway's, the floor's, LiteLLM's when measured, and their ratios."""

    def levels(mode: str) -> list[int]:
        return sorted(set(stub.get(mode, {})) & set(floor.get(mode, {})) & set(proxy.get(mode, {})))

    def row(name: str, unit: str, mode: str, c: int, value) -> dict:
        # `value(results)`: the figure of one target at this level; None for a target that lacks the level.
        ref = (litellm or {}).get(mode, {}).get(c)
        gw, fl = value(proxy[mode][c]), value(floor[mode][c])
        lite = None if ref is None else value(ref)
        involved: list[LevelResult] = [proxy[mode][c], floor[mode][c], *([ref] if ref is not None else [])]
        return {
            "figure": name,
            "unit": unit,
            "gateway": gw,
            NAME: fl,
            "litellm": lite,
            "gateway_vs_floor": _ratio(gw, fl),
            "floor_vs_litellm": _ratio(fl, lite),
            "clean": all(r.errors == 0 for r in involved),
        }

    def added(mode: str, c: int):
        base = figure(stub[mode][c]).p50
        return lambda lvl: tables.delta(base, figure(lvl).p50)

    rows = []
    sync, stream = levels("sync"), levels("stream")
    if sync:
        high, low = sync[-1], sync[0]
        rows.append(
            row(f"sync c={high}: server CPU per request", "ms/req", "sync", high, lambda r: server_cpu_ms(r.cpu))
        )
        rows.append(row(f"sync c={low}: added p50", "ms", "sync", low, added("sync", low)))
    if stream:
        rows.append(row(f"stream c={stream[0]}: added TTFT p50", "ms", "stream", stream[0], added("stream", stream[0])))
    if sync and sync[-1] > 1:  # throughput at c=1 is latency in disguise
        rows.append(row(f"sync c={sync[-1]}: throughput", "req/s", "sync", sync[-1], lambda r: r.throughput_rps))
    return rows


def render_floor(rows: list[dict]) -> list[str]:
    """The section "the gateway vs its stack's floor", as text lines."""
    with_litellm = any(r["litellm"] is not None for r in rows)

    def shown(value: float | None, unit: str) -> str:
        return "-" if value is None else f"{tables.num(value, unit)} {unit}"

    table = []
    for r in rows:
        cells = [
            r["figure"] + ("" if r["clean"] else " *"),
            shown(r["gateway"], r["unit"]),
            shown(r[NAME], r["unit"]),
            tables.delta_text(r["gateway_vs_floor"], "ratio"),
        ]
        if with_litellm:
            cells += [shown(r["litellm"], r["unit"]), tables.delta_text(r["floor_vs_litellm"], "ratio")]
        table.append(tuple(cells))
    header = (
        "figure",
        "gateway",
        "floor",
        "gateway ÷ floor",
        *(("litellm", "floor ÷ litellm") if with_litellm else ()),
    )
    lines = [
        "the gateway vs its stack's floor (informational, no bounds): the floor is the same stack (gunicorn "
        "gthread, Celery threads, Redis) with none of the gateway's features",
        *tables.table(header, table, left=1, right_until=len(header)),
    ]
    if not all(r["clean"] for r in rows):
        lines.append("* a level involved had failed requests")
    return lines
