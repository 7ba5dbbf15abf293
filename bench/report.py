"""The report: stub vs proxy per scenario, the targets marked PASS/MISS, as a table and as JSON."""
from __future__ import annotations

import json
from pathlib import Path

from bench.loadgen import LevelResult

# The proxy's performance targets (what "good enough" means for a gateway in front of a 50 ms upstream).
ADDED_P50_MS_MAX = 5.0  # sync, lowest concurrency: proxy p50 − stub p50
THROUGHPUT_RATIO_MIN = 0.75  # sync, highest concurrency: proxy req/s ÷ stub req/s
TTFT_ADDED_P50_MS_MAX = 10.0  # streams, every concurrency: proxy TTFT p50 − stub TTFT p50

Results = dict[str, dict[int, LevelResult]]  # mode -> concurrency -> result


def _row(scenario: str, metric: str, stub: float | None, proxy: float | None, *, kind: str,
         target: str | None = None, passed: bool | None = None, unit: str = "ms") -> dict:
    if stub is None or proxy is None:
        delta = None
    elif kind == "ratio":
        delta = proxy / stub if stub else None
    else:
        delta = proxy - stub
    return {"scenario": scenario, "metric": metric, "unit": unit, "stub": stub, "proxy": proxy,
            "delta": delta, "delta_kind": kind, "target": target,
            "status": None if passed is None else ("PASS" if passed else "MISS")}


def build_rows(stub: Results, proxy: Results) -> list[dict]:
    """One row per figure; rows that carry a target have a PASS/MISS status."""
    rows: list[dict] = []
    sync_levels = sorted(set(stub.get("sync", {})) & set(proxy.get("sync", {})))
    for c in sync_levels:
        s, p = stub["sync"][c], proxy["sync"][c]
        clean = p.errors == 0
        scenario = f"sync c={c}"
        added = _delta(s.latency_ms.p50, p.latency_ms.p50)
        if c == sync_levels[0]:
            rows.append(_row(scenario, "p50 latency", s.latency_ms.p50, p.latency_ms.p50, kind="added",
                             target=f"added ≤ {ADDED_P50_MS_MAX:g} ms",
                             passed=clean and added is not None and added <= ADDED_P50_MS_MAX))
        else:
            rows.append(_row(scenario, "p50 latency", s.latency_ms.p50, p.latency_ms.p50, kind="added"))
        rows.append(_row(scenario, "p99 latency", s.latency_ms.p99, p.latency_ms.p99, kind="added"))
        ratio = p.throughput_rps / s.throughput_rps if s.throughput_rps else None
        if c == sync_levels[-1] and c > 1:
            rows.append(_row(scenario, "throughput", s.throughput_rps, p.throughput_rps, kind="ratio", unit="req/s",
                             target=f"≥ {THROUGHPUT_RATIO_MIN:g}× stub",
                             passed=clean and ratio is not None and ratio >= THROUGHPUT_RATIO_MIN))
        else:
            rows.append(_row(scenario, "throughput", s.throughput_rps, p.throughput_rps, kind="ratio",
                             unit="req/s"))
    for c in sorted(set(stub.get("stream", {})) & set(proxy.get("stream", {}))):
        s, p = stub["stream"][c], proxy["stream"][c]
        scenario = f"stream c={c}"
        added = _delta(s.ttft_ms.p50, p.ttft_ms.p50)
        rows.append(_row(scenario, "TTFT p50", s.ttft_ms.p50, p.ttft_ms.p50, kind="added",
                         target=f"added ≤ {TTFT_ADDED_P50_MS_MAX:g} ms",
                         passed=p.errors == 0 and added is not None and added <= TTFT_ADDED_P50_MS_MAX))
        rows.append(_row(scenario, "TTFT p99", s.ttft_ms.p99, p.ttft_ms.p99, kind="added"))
        rows.append(_row(scenario, "throughput", s.throughput_rps, p.throughput_rps, kind="ratio", unit="req/s"))
    return rows


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


def _num(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if unit == "req/s" and value >= 100 else f"{value:.1f}"


def render(report: dict) -> str:
    """The report as a plain-text table."""
    cfg, proxy = report["config"], report["proxy_topology"]
    lines = [
        f"LLM Proxy benchmark: stub latency {cfg['latency_ms']:g} ms, {report['machine']['cpus']} CPUs, "
        f"{cfg['requests_per_thread']} requests per client thread (+{cfg['warmup_per_thread']} warm-up)",
        f"proxy: gunicorn {proxy['web_workers']} workers × {proxy['web_threads']} threads, "
        f"celery {proxy['worker_procs']} × {proxy['worker_threads']} threads (-P threads, -Q interactive)",
        "",
    ]
    header = ("scenario", "metric", "stub", "proxy", "proxy−stub", "target", "result")
    table = [header]
    for r in report["rows"]:
        if r["delta"] is None:
            delta = "-"
        elif r["delta_kind"] == "ratio":
            delta = f"{r['delta']:.2f}×"
        else:
            delta = f"{r['delta']:+.1f} ms"
        table.append((r["scenario"], f"{r['metric']} ({r['unit']})", _num(r["stub"], r["unit"]),
                      _num(r["proxy"], r["unit"]), delta, r["target"] or "", r["status"] or ""))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        cells = [cell.ljust(w) if j < 2 or j >= 5 else cell.rjust(w) for j, (cell, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    errors = [f"{side} {mode} c={c}: {n} errors, e.g. {samples[0] if samples else '?'}"
              for side in ("stub", "proxy") for mode, levels in report["results"][side].items()
              for c, lvl in levels.items() for n, samples in [(lvl["errors"], lvl["error_samples"])] if n]
    lines.append("")
    lines.extend(errors or ["no request failed"])
    passed = sum(r["status"] == "PASS" for r in report["rows"])
    targets = sum(r["status"] is not None for r in report["rows"])
    lines.append(f"targets met: {passed}/{targets}")
    return "\n".join(lines)


def build_report(*, config: dict, machine: dict, proxy_topology: dict, stub: Results, proxy: Results) -> dict:
    """Everything the run measured, JSON-ready."""
    return {
        "config": config,
        "machine": machine,
        "proxy_topology": proxy_topology,
        "rows": build_rows(stub, proxy),
        "results": {side: {mode: {str(c): lvl.as_dict() for c, lvl in levels.items()} for mode, levels in res.items()}
                    for side, res in (("stub", stub), ("proxy", proxy))},
    }


def write_json(report: dict, path: Path) -> None:
    """Write the report (bench/results/ is gitignored)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
