"""The report: stub vs proxy per scenario, the targets marked PASS/MISS, as a table and as JSON.

Three scenario groups, each a table of its own with the same layout (two figures measured in the
same run side by side, their difference or ratio, a target or check, PASS/MISS):
  base       stub vs proxy: latency, throughput, streaming time to first token (`rows`)
  admission  proxy with a key without limits vs with generous limits (`admission.rows`)
  batch      batch throughput vs its ideal; a sync probe while the batch drains vs idle; the output
             file checked line by line (`batch.rows`)
With `--peer litellm`, a three-way table (bare stub, LiteLLM's proxy, the gateway: same load, same run) and
the issue's goals for the gateway relative to LiteLLM, each met or not (`peer`: bench/peer_report.py).
Across scenarios: the answer → ledger lag of every measured proxy phase (`record_lag`) and the gateway's own
goals, each met or not (`goals`: bench/goals.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from bench import batch_report, goals, lag, peer_report, tables
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
    if report.get("peer"):
        lines.extend(peer_report.render_peer(report["peer"]))
        lines.append("")
    if report.get("admission"):
        lines.extend(_render_admission(report["admission"]))
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
    lines.extend(_cpu_table(_cpu_rows(report), report["machine"]["cpus"]))
    lines.append("")
    errors = [
        f"{side} {mode} c={c}: {n} errors, e.g. {samples[0] if samples else '?'}"
        for side in ("stub", "proxy")
        for mode, levels in report["results"][side].items()
        for c, lvl in levels.items()
        for n, samples in [(lvl["errors"], lvl["error_samples"])]
        if n
    ]
    peer = report.get("peer") or {}
    errors += peer_report.peer_errors(peer)
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
    if peer.get("goals_total"):
        lines.append(f"goals vs {peer['name']} met: {peer['goals_met']}/{peer['goals_total']}")
    if report.get("goals"):
        lines.append(f"gateway goals met: {report['goals_met']}/{len(report['goals'])}")
    return "\n".join(lines)


def _render_admission(adm: dict) -> list[str]:
    lines = [
        f"admission: the same proxy with a key without limits and with generous limits "
        f"(rpm {adm['limits']['rpm']:,}, tpm {adm['limits']['tpm']:,}, budget ${adm['limits']['budget_usd']}), "
        f"A-B-B-A halves pooled"
    ]
    table = [
        (
            r["scenario"],
            f"{r['metric']} ({r['unit']})",
            tables.num(r["stub"], r["unit"]),
            tables.num(r["no_limits"], r["unit"]),
            tables.num(r["limits"], r["unit"]),
            tables.delta_text(r["delta"], r["delta_kind"]),
            r["target"] or "",
            r["status"] or "",
        )
        for r in adm["rows"]
    ]
    lines.extend(
        tables.table(("scenario", "metric", "stub", "no limits", "limits", "limits−none", "check", "result"), table)
    )
    return lines


_CPU_COLUMNS = ("litellm", "web", "worker", "batch", "writer", "beat", "postgres", "redis", "stub", "loadgen", "other")


def _cpu_rows(report: dict) -> list[tuple[str, dict, float]]:
    """(label, CPU account, requests per second) of every measured phase that has one."""
    rows = []
    for side in ("stub", "proxy"):
        for mode, levels in report["results"][side].items():
            for c, lvl in levels.items():
                rows.append((f"{side} {mode} c={c}", lvl.get("cpu"), lvl["throughput_rps"]))
    rows += peer_report.peer_cpu_rows(report.get("peer") or {})
    adm = report.get("admission") or {}
    for name, levels in adm.get("results", {}).items():
        for c, lvl in levels.items():
            rows.append((f"admission {name} c={c}", lvl.get("cpu"), lvl["throughput_rps"]))
    bat = report.get("batch") or {}
    if bat.get("probe_idle"):
        rows.append(("batch: probe idle", bat["probe_idle"].get("cpu"), bat["probe_idle"]["throughput_rps"]))
    if bat.get("cpu"):
        rows.append(("batch: drain, per line", bat["cpu"], bat.get("lines_per_s") or 0.0))
    return [r for r in rows if r[1]]


def _cpu_table(rows: list[tuple[str, dict, float]], cpus: int | None) -> list[str]:
    """CPU milliseconds per request by component (workers summed), per level: where the cores went."""
    if not rows:
        return ["(no CPU figures: psutil is not installed)"]
    others = []
    per_rows = []
    for label, cpu, rate in rows:
        per = dict(cpu["cpu_ms_per_request"])
        per["worker"] = sum(v for k, v in per.items() if k.startswith("worker"))
        per["batch"] = sum(v for k, v in per.items() if k.startswith("batch"))  # batch1…: one per --batch-procs
        per_rows.append((label, per, cpu))
        # Share of the whole machine that processes outside the bench took during this level.
        if per.get("other", 0) * rate / (1000.0 * (cpus or 1)) > 0.15:
            others.append(label)
    columns = [
        k
        for k in _CPU_COLUMNS
        if k in ("web", "worker", "postgres", "redis", "stub", "loadgen", "other")
        or any(per.get(k) for _, per, _ in per_rows)
    ]
    table = [
        (f"{label}", *[f"{per[k]:.2f}" if per.get(k) else "-" for k in columns], f"{cpu['machine_busy_pct']:.0f}%")
        for label, per, cpu in per_rows
    ]
    lines = tables.table(("CPU ms/request", *columns, "machine busy"), table, left=1, right_until=len(columns) + 2)
    if others:
        lines.append(
            f"note: processes outside the bench took over 15% of the machine during {', '.join(others)}; "
            "those figures are skewed (run on a quiet machine)"
        )
    return lines


def admission_rows(stub_sync: dict[int, LevelResult], results: dict[str, dict[int, LevelResult]]) -> list[dict]:
    """Per level: p50/p99 with and without limits and the difference, throughput ratio, 429s (must be 0)."""
    rows = []
    none, lim = results.get("none", {}), results.get("limits", {})
    for c in sorted(set(none) & set(lim)):
        a, b, s = none[c], lim[c], stub_sync.get(c)
        scenario = f"admission sync c={c}"

        def row(metric, unit, sv, av, bv, kind, target=None, passed=None):
            return {
                "scenario": scenario,
                "metric": metric,
                "unit": unit,
                "stub": sv,
                "no_limits": av,
                "limits": bv,
                "delta": tables.compare(av, bv, kind),
                "delta_kind": kind,
                "target": target,
                "status": tables.status(passed),
            }

        rows.append(row("p50 latency", "ms", s and s.latency_ms.p50, a.latency_ms.p50, b.latency_ms.p50, "added"))
        rows.append(row("p99 latency", "ms", s and s.latency_ms.p99, a.latency_ms.p99, b.latency_ms.p99, "added"))
        rows.append(row("throughput", "req/s", s and s.throughput_rps, a.throughput_rps, b.throughput_rps, "ratio"))
        web_a = ((a.cpu or {}).get("cpu_ms_per_request") or {}).get("web")
        web_b = ((b.cpu or {}).get("cpu_ms_per_request") or {}).get("web")
        if web_a is not None and web_b is not None:
            rows.append(row("web CPU", "ms/req", None, web_a, web_b, "added"))
        refused_a, refused_b = a.error_statuses.get("429", 0), b.error_statuses.get("429", 0)
        rows.append(
            row(
                "429 responses",
                "count",
                None,
                refused_a,
                refused_b,
                "count",
                target="0",
                passed=refused_a == 0 and refused_b == 0,
            )
        )
        rows.append(
            row(
                "other errors",
                "count",
                None,
                a.errors - refused_a,
                b.errors - refused_b,
                "count",
                target="0",
                passed=a.errors == refused_a and b.errors == refused_b,
            )
        )
    return rows


def build_report(
    *,
    config: dict,
    machine: dict,
    proxy_topology: dict,
    stub: Results,
    proxy: Results,
    admission: dict | None = None,
    batch: dict | None = None,
    peer: dict | None = None,
    record_lag: list[dict] | None = None,
) -> dict:
    """Everything the run measured, JSON-ready.

    `admission`: {"limits", "stub_sync": level -> LevelResult, "results": key name -> level -> LevelResult};
    `batch`: bench.batch.run_batch's dict plus the topology;
    `peer`: {"name", "version", "command", "results": mode -> level -> LevelResult} of a peer proxy;
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
        adm_rows = admission_rows(admission["stub_sync"], admission["results"])
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
    if peer:
        report["peer"] = peer_report.build_peer(stub, proxy, peer)
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
