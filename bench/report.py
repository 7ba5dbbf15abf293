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
    lines.extend(_cpu_table(report["results"], report["machine"]["cpus"]))
    lines.append("")
    lines.extend(errors or ["no request failed"])
    passed = sum(r["status"] == "PASS" for r in report["rows"])
    targets = sum(r["status"] is not None for r in report["rows"])
    lines.append(f"targets met: {passed}/{targets}")
    return "\n".join(lines)


_CPU_COLUMNS = ("web", "worker", "postgres", "redis", "stub", "loadgen", "other")


def _cpu_table(results: dict, cpus: int | None) -> list[str]:
    """CPU milliseconds per request by component (workers summed), per level: where the cores went."""
    table = [("CPU ms/request", *_CPU_COLUMNS, "machine busy")]
    others = []
    for side in ("stub", "proxy"):
        for mode, levels in results[side].items():
            for c, lvl in levels.items():
                cpu = lvl.get("cpu")
                if not cpu:
                    continue
                per = dict(cpu["cpu_ms_per_request"])
                per["worker"] = sum(v for k, v in per.items() if k.startswith("worker"))
                cells = [f"{per[k]:.2f}" if per.get(k) else "-" for k in _CPU_COLUMNS]
                table.append((f"{side} {mode} c={c}", *cells, f"{cpu['machine_busy_pct']:.0f}%"))
                # Share of the whole machine that processes outside the bench took during this level.
                if per.get("other", 0) * lvl["throughput_rps"] / (1000.0 * (cpus or 1)) > 0.15:
                    others.append(f"{side} {mode} c={c}")
    if len(table) == 1:
        return ["(no CPU figures: psutil is not installed)"]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if others:
        lines.append(f"note: processes outside the bench took over 15% of the machine during {', '.join(others)}; "
                     "those figures are skewed (run on a quiet machine)")
    return lines


def build_report(*, config: dict, machine: dict, proxy_topology: dict, stub: Results, proxy: Results) -> dict:
    """Everything the run measured, JSON-ready."""
    rows = build_rows(stub, proxy)
    return {
        "config": config,
        "machine": machine,
        "proxy_topology": proxy_topology,
        "rows": rows,
        "targets_met": sum(r["status"] == "PASS" for r in rows),
        "targets": sum(r["status"] is not None for r in rows),
        "results": {side: {mode: {str(c): lvl.as_dict() for c, lvl in levels.items()} for mode, levels in res.items()}
                    for side, res in (("stub", stub), ("proxy", proxy))},
    }


def _rounded(value):
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def write_json(report: dict, path: Path) -> None:
    """Write the report (bench/results/ is gitignored)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_rounded(report), indent=2, ensure_ascii=False) + "\n")
