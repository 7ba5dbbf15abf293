"""The report: stub vs proxy per scenario, the targets marked PASS/MISS, as a table and as JSON.

Three scenario groups, each a table of its own with the same layout (two figures measured in the
same run side by side, their difference or ratio, a target or check, PASS/MISS):
  base       stub vs proxy: latency, throughput, streaming time to first token (`rows`)
  admission  proxy with a key without limits vs with generous limits (`admission.rows`)
  batch      batch throughput vs its ideal; a sync probe while the batch drains vs idle; the output
             file checked line by line (`batch.rows`)
With `--peer`, a table with a row per target (bare stub, each peer, the gateway: same load, same run; `peers`):
with `litellm`, the issue's goals for the gateway relative to LiteLLM, each met or not (bench/peer_report.py);
with `floor`, the gateway's ratios to its stack's floor, informational (`peers.floor`: bench/floor_report.py).
Across scenarios: the answer → ledger lag of every measured proxy phase (`record_lag`) and the gateway's own
goals, each met or not (`goals`: bench/goals.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from bench import admission_report, batch_report, cpu_report, floor_report, goals, lag, peer_report, tables
from bench.loadgen import LevelResult

# The proxy's performance targets (what "good enough" means for a gateway in front of a 50 ms upstream).
ADDED_P50_MS_MAX = 5.0  # sync, lowest concurrency: proxy p50 − stub p50
THROUGHPUT_RATIO_MIN = 0.75  # sync, highest concurrency: proxy req/s ÷ stub req/s
TTFT_ADDED_P50_MS_MAX = 10.0  # streams, every concurrency: proxy TTFT p50 − stub TTFT p50

Results = dict[str, dict[int, LevelResult]]  # mode -> concurrency -> result


def _row(
    scenario: str,
    metric: str,
    stub: float | None,
    proxy: float | None,
    *,
    kind: str,
    target: str | None = None,
    passed: bool | None = None,
    unit: str = "ms",
) -> dict:
    return {
        "scenario": scenario,
        "metric": metric,
        "unit": unit,
        "stub": stub,
        "proxy": proxy,
        "delta": tables.compare(stub, proxy, kind),
        "delta_kind": kind,
        "target": target,
        "status": tables.status(passed),
    }


def build_rows(stub: Results, proxy: Results) -> list[dict]:
    """One row per figure; rows that carry a target have a PASS/MISS status."""
    rows: list[dict] = []
    sync_levels = sorted(set(stub.get("sync", {})) & set(proxy.get("sync", {})))
    for c in sync_levels:
        s, p = stub["sync"][c], proxy["sync"][c]
        clean = p.errors == 0
        scenario = f"sync c={c}"
        added = tables.delta(s.latency_ms.p50, p.latency_ms.p50)
        if c == sync_levels[0]:
            rows.append(
                _row(
                    scenario,
                    "p50 latency",
                    s.latency_ms.p50,
                    p.latency_ms.p50,
                    kind="added",
                    target=f"added ≤ {ADDED_P50_MS_MAX:g} ms",
                    passed=clean and added is not None and added <= ADDED_P50_MS_MAX,
                )
            )
        else:
            rows.append(_row(scenario, "p50 latency", s.latency_ms.p50, p.latency_ms.p50, kind="added"))
        rows.append(_row(scenario, "p99 latency", s.latency_ms.p99, p.latency_ms.p99, kind="added"))
        ratio = p.throughput_rps / s.throughput_rps if s.throughput_rps else None
        if c == sync_levels[-1] and c > 1:
            rows.append(
                _row(
                    scenario,
                    "throughput",
                    s.throughput_rps,
                    p.throughput_rps,
                    kind="ratio",
                    unit="req/s",
                    target=f"≥ {THROUGHPUT_RATIO_MIN:g}× stub",
                    passed=clean and ratio is not None and ratio >= THROUGHPUT_RATIO_MIN,
                )
            )
        else:
            rows.append(_row(scenario, "throughput", s.throughput_rps, p.throughput_rps, kind="ratio", unit="req/s"))
    for c in sorted(set(stub.get("stream", {})) & set(proxy.get("stream", {}))):
        s, p = stub["stream"][c], proxy["stream"][c]
        scenario = f"stream c={c}"
        added = tables.delta(s.ttft_ms.p50, p.ttft_ms.p50)
        rows.append(
            _row(
                scenario,
                "TTFT p50",
                s.ttft_ms.p50,
                p.ttft_ms.p50,
                kind="added",
                target=f"added ≤ {TTFT_ADDED_P50_MS_MAX:g} ms",
                passed=p.errors == 0 and added is not None and added <= TTFT_ADDED_P50_MS_MAX,
            )
        )
        rows.append(_row(scenario, "TTFT p99", s.ttft_ms.p99, p.ttft_ms.p99, kind="added"))
        rows.append(_row(scenario, "throughput", s.throughput_rps, p.throughput_rps, kind="ratio", unit="req/s"))
    return rows


def render(report: dict) -> str:
    """The report as plain-text tables."""
    cfg, proxy = report["config"], report["proxy_topology"]
    scenarios = cfg.get("scenarios", ["base"])
    loads = (
        f"{cfg['requests_per_thread']} requests per client thread (+{cfg['warmup_per_thread']} warm-up); "
        if "base" in scenarios or "admission" in scenarios
        else ""
    )
    lines = [
        f"LLM Proxy benchmark: stub latency {cfg['latency_ms']:g} ms, {report['machine']['cpus']} CPUs, "
        f"{loads}scenarios: {', '.join(scenarios)}",
    ]
    if "base" in scenarios or "admission" in scenarios:
        lines.append(
            f"proxy: gunicorn {proxy['web_workers']} workers × {proxy['web_threads']} threads, "
            f"celery {proxy['worker_procs']} × {proxy['worker_threads']} threads (-P threads, -Q interactive)"
        )
    lines.append("")
    if report["rows"]:
        lines.append("base: the bare stub vs the same load through the proxy (key without limits)")
        table = [
            (
                r["scenario"],
                f"{r['metric']} ({r['unit']})",
                tables.num(r["stub"], r["unit"]),
                tables.num(r["proxy"], r["unit"]),
                tables.delta_text(r["delta"], r["delta_kind"]),
                r["target"] or "",
                r["status"] or "",
            )
            for r in report["rows"]
        ]
        lines.extend(tables.table(("scenario", "metric", "stub", "proxy", "proxy−stub", "target", "result"), table))
        lines.append("")
    peers = report.get("peers") or {}
    if peers:
        lines.extend(peer_report.render_peers(peers))
        lines.append("")
    if peers.get("floor"):
        lines.extend(floor_report.render_floor(peers["floor"]))
        lines.append("")
    if report.get("admission"):
        lines.extend(admission_report.render_admission(report["admission"]))
        lines.append("")
    if report.get("batch"):
        lines.extend(batch_report.render_batch(report["batch"]))
        lines.append("")
    if report.get("record_lag"):
        lines.extend(lag.render(report["record_lag"]["phases"]))
        lines.append("")
    if report.get("goals"):
        lines.extend(goals.render_goals(report["goals"]))
        lines.append("")
    lines.extend(cpu_report.cpu_table(cpu_report.cpu_rows(report), report["machine"]["cpus"]))
    lines.append("")
    errors = [
        f"{side} {mode} c={c}: {n} errors, e.g. {samples[0] if samples else '?'}"
        for side in ("stub", "proxy")
        for mode, levels in report["results"][side].items()
        for c, lvl in levels.items()
        for n, samples in [(lvl["errors"], lvl["error_samples"])]
        if n
    ]
    errors += peer_report.peer_errors(peers)
    adm = report.get("admission") or {}
    errors += [
        f"admission {name} c={c}: {lvl['errors']} errors {lvl['error_statuses']}, "
        f"e.g. {(lvl['error_samples'] or ['?'])[0]}"
        for name, levels in adm.get("results", {}).items()
        for c, lvl in levels.items()
        if lvl["errors"]
    ]
    bat = report.get("batch") or {}
    errors += [
        f"batch probe {when}: {lvl['errors']} errors {lvl['error_statuses']}, e.g. {(lvl['error_samples'] or ['?'])[0]}"
        for when in ("probe_idle", "probe_draining")
        for lvl in [bat.get(when)]
        if lvl and lvl["errors"]
    ]
    errors += [f"batch output: {s}" for s in (bat.get("output") or {}).get("error_samples", [])]
    lines.extend(errors or ["no request failed"])
    if report["targets"]:
        lines.append(f"targets met: {report['targets_met']}/{report['targets']}")
    if report.get("checks"):
        lines.append(f"checks passed: {report['checks_passed']}/{report['checks']}")
    if peers.get("goals_total"):
        lines.append(f"goals vs {peers['goals_vs']} met: {peers['goals_met']}/{peers['goals_total']}")
    if report.get("goals"):
        lines.append(f"gateway goals met: {report['goals_met']}/{len(report['goals'])}")
    return "\n".join(lines)


def build_report(
    *,
    config: dict,
    machine: dict,
    proxy_topology: dict,
    stub: Results,
    proxy: Results,
    admission: dict | None = None,
    batch: dict | None = None,
    peers: list[dict] | None = None,
    record_lag: list[dict] | None = None,
) -> dict:
    """Everything the run measured, JSON-ready.

    `admission`: {"limits", "stub_sync": level -> LevelResult, "results": key name -> level -> LevelResult};
    `batch`: bench.batch.run_batch's dict plus the topology;
    `peers`: [{"name", "version", "command", "results": mode -> level -> LevelResult}, …], the peers measured;
    `record_lag`: bench.lag.LagRecorder's phases (None: not measured, no lag table and no lag goal).
    """
    rows = build_rows(stub, proxy)
    report = {
        "config": config,
        "machine": machine,
        "proxy_topology": proxy_topology,
        "rows": rows,
        "targets_met": sum(r["status"] == "PASS" for r in rows),
        "targets": sum(r["status"] is not None for r in rows),
        "results": {
            side: {mode: {str(c): lvl.as_dict() for c, lvl in levels.items()} for mode, levels in res.items()}
            for side, res in (("stub", stub), ("proxy", proxy))
        },
    }
    checks = []
    if admission:
        adm_rows = admission_report.admission_rows(admission["stub_sync"], admission["results"])
        checks += adm_rows
        report["admission"] = {
            "limits": admission["limits"],
            "rows": adm_rows,
            "usage_requests": admission.get("usage_requests"),
            "results": {
                name: {str(c): lvl.as_dict() for c, lvl in levels.items()}
                for name, levels in admission["results"].items()
            },
        }
    if batch:
        bat_rows = batch_report.batch_rows(batch)
        checks += bat_rows
        report["batch"] = {
            **batch,
            "rows": bat_rows,
            "cpu_per_line": batch_report.cpu_per_line(batch.get("cpu"), batch.get("lines_per_s")),
            "probe_idle": batch["probe_idle"].as_dict(),
            "probe_draining": batch["probe_draining"].as_dict(),
        }
    if peers:
        report["peers"] = peer_report.build_peers(stub, proxy, peers)
        floor = next((p["results"] for p in peers if p["name"] == floor_report.NAME), None)
        if floor is not None:
            litellm = next((p["results"] for p in peers if p["name"] == peer_report.GOALS_PEER), None)
            report["peers"]["floor"] = floor_report.floor_rows(stub, floor, proxy, litellm=litellm)
    if record_lag is not None:
        report["record_lag"] = {"phases": record_lag, "quantiles": "upper bound of the bucket the quantile falls in"}
    own_goals = ([goals.lag_goal(record_lag)] if record_lag is not None else []) + (
        goals.batch_goals(batch) if batch else []
    )
    if own_goals:
        report["goals"] = own_goals
        report["goals_met"] = sum(g["met"] is True for g in own_goals)
    report["checks_passed"] = sum(r["status"] == "PASS" for r in checks)
    report["checks"] = sum(r["status"] is not None for r in checks)
    return report


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
