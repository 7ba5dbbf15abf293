"""The report's CPU table: CPU milliseconds per request by process, for every measured phase of every target."""

from __future__ import annotations

from bench import peer_report, tables

_CPU_COLUMNS = (
    "litellm",
    "floor-web",
    "floor-worker",
    "web",
    "worker",
    "batch",
    "writer",
    "beat",
    "postgres",
    "redis",
    "stub",
    "loadgen",
    "other",
)


def cpu_rows(report: dict) -> list[tuple[str, dict, float]]:
    """(label, CPU account, requests per second) of every measured phase that has one."""
    rows = []
    for side in ("stub", "proxy"):
        for mode, levels in report["results"][side].items():
            for c, lvl in levels.items():
                rows.append((f"{side} {mode} c={c}", lvl.get("cpu"), lvl["throughput_rps"]))
    rows += peer_report.peer_cpu_rows(report.get("peers") or {})
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


def cpu_table(rows: list[tuple[str, dict, float]], cpus: int | None) -> list[str]:
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
