"""The batch scenario's part of the report: throughput vs its ideal, the sync probe draining vs idle, the output
file's checks (`report["batch"]["rows"]`), and where the CPU of each line went, by process
(`report["batch"]["cpu_per_line"]`)."""

from __future__ import annotations

from bench import tables

# The gateway's processes by role, as the CPU meter names them (numbered ones, worker1… or batch1…, summed).
ROLES = (
    ("web", "web"),
    ("interactive workers", "worker"),
    ("batch workers", "batch"),
    ("writer", "writer"),
    ("beat", "beat"),
    ("postgres", "postgres"),
    ("redis", "redis"),
)
# What else the meter saw: the upstream, the bench itself (probe and polls), processes it does not name.
OUTSIDE = (("stub", "stub"), ("bench client (probe, polls)", "loadgen"), ("other processes", "other"))


def batch_rows(bat: dict) -> list[dict]:
    """Throughput vs the ideal, the probe draining vs idle, and the output file's checks."""
    rows = []

    def row(scenario, metric, unit, ref, measured, kind, target=None, passed=None):
        return {
            "scenario": scenario,
            "metric": metric,
            "unit": unit,
            "reference": ref,
            "measured": measured,
            "delta": tables.compare(ref, measured, kind),
            "delta_kind": kind,
            "target": target,
            "status": tables.status(passed),
        }

    name = f"batch {bat['lines']} lines"
    ideal = bat["ideal_lines_per_s"]
    rows.append(
        row(name, "throughput, until all lines ended (vs ideal)", "lines/s", ideal, bat["lines_per_s"], "ratio")
    )
    rows.append(row(name, "throughput, steady 10–90% (vs ideal)", "lines/s", ideal, bat["steady_lines_per_s"], "ratio"))
    rows.append(
        row(name, "throughput, incl. finalize (vs ideal)", "lines/s", ideal, bat["end_to_end_lines_per_s"], "ratio")
    )
    idle, busy = bat["probe_idle"], bat["probe_draining"]
    probe = "sync probe c=1"
    rows.append(row(probe, "p50 latency, draining (vs idle)", "ms", idle.latency_ms.p50, busy.latency_ms.p50, "ratio"))
    rows.append(row(probe, "p99 latency, draining (vs idle)", "ms", idle.latency_ms.p99, busy.latency_ms.p99, "ratio"))
    rows.append(row(probe, "requests, draining (vs idle)", "count", idle.requests, busy.requests, "none"))
    rows.append(
        row(
            probe,
            "errors, draining (vs idle)",
            "count",
            idle.errors,
            busy.errors,
            "none",
            target="0",
            passed=idle.errors == 0 and busy.errors == 0,
        )
    )
    out = bat.get("output") or {}
    n = bat["lines"]
    rows.append(
        row(
            "batch output",
            f"status ({bat['status']})",
            "count",
            None,
            None,
            "none",
            target="completed",
            passed=bat["status"] == "completed",
        )
    )
    rows.append(
        row(
            "batch output",
            "output file lines",
            "count",
            n,
            out.get("output_lines"),
            "count",
            target=f"= {n}",
            passed=out.get("output_lines") == n,
        )
    )
    unique_ok = (
        out.get("custom_ids_unique") == n
        and not out.get("custom_ids_duplicated")
        and not out.get("custom_ids_missing")
        and not out.get("custom_ids_unknown")
    )
    rows.append(
        row(
            "batch output",
            "unique custom_ids (= input's)",
            "count",
            n,
            out.get("custom_ids_unique"),
            "count",
            target=f"= {n}, none missing",
            passed=unique_ok,
        )
    )
    failed = (bat.get("request_counts") or {}).get("failed")
    rows.append(
        row(
            "batch output",
            f"errors (request_counts.failed {failed})",
            "count",
            0,
            out.get("errors"),
            "count",
            target="0",
            passed=out.get("errors") == 0 and not failed,
        )
    )
    return rows


def render_batch(bat: dict) -> list[str]:
    """The batch table, its timing and the CPU per line, as text lines."""
    procs = bat.get("procs", 1)
    lines = [
        f"batch: {bat['lines']:,} lines via /v1/files + /v1/batches; celery `batch` {procs} × {bat['threads']} "
        f"threads, `interactive` {bat['interactive_procs']} × {bat['interactive_threads']} threads"
        f"{' + beat' if bat.get('beat') else ''}; ideal = {procs} × {bat['threads']} threads / "
        f"{bat['latency_ms']:g} ms; "
        f"probe: 1 sync request at a time, {bat['probe_gap_ms']:g} ms apart"
    ]
    table = [
        (
            r["scenario"],
            f"{r['metric']} ({r['unit']})",
            tables.num(r["reference"], r["unit"]),
            tables.num(r["measured"], r["unit"]),
            tables.delta_text(r["delta"], r["delta_kind"]),
            r["target"] or "",
            r["status"] or "",
        )
        for r in bat["rows"]
    ]
    lines.extend(
        tables.table(("scenario", "metric", "reference", "measured", "measured/ref", "check", "result"), table)
    )
    finalize = (
        f"{bat['finalize_s']:.1f} s"
        if bat.get("finalize_s") is not None
        else f"< {bat.get('poll_s', 0.5):g} s (seen at the same poll as the last lines; included in drain)"
    )
    lines.append(
        f"batch timing: upload {bat['upload_s']:.2f} s, create {bat['create_s']:.2f} s, "
        f"drain {bat['drain_s']:.1f} s (polled every {bat.get('poll_s', 0.5):g} s), finalize {finalize}"
    )
    if bat.get("cpu_per_line"):
        lines.extend(render_cpu_per_line(bat["cpu_per_line"]))
    return lines


def cpu_per_line(cpu: dict | None, lines_per_s: float | None) -> dict | None:
    """CPU ms per line by gateway role (numbered processes summed, each kept), their total, the rest of the machine.

    `cpu`: the drain's CPU account (bench.cpu, per line); with `lines_per_s`, each figure also as cores kept
    busy (ms per line × lines per second ÷ 1000: 1.0 = one core all the time).
    """
    if not cpu:
        return None
    spent = cpu["cpu_ms_per_request"]

    def cores(ms: float) -> float | None:
        return ms * lines_per_s / 1000.0 if lines_per_s else None

    processes = []
    for label, name in ROLES:
        members = {k: v for k, v in spent.items() if k == name or (k.startswith(name) and k[len(name) :].isdigit())}
        if members:  # beat runs only with --beat
            total = sum(members.values())
            processes.append({"process": label, "ms_per_line": total, "cores": cores(total), "each": members})
    gateway = sum(p["ms_per_line"] for p in processes)
    outside = [
        {"process": label, "ms_per_line": spent[name], "cores": cores(spent[name])}
        for label, name in OUTSIDE
        if name in spent
    ]
    machine = gateway + sum(p["ms_per_line"] for p in outside)
    return {
        "processes": processes,
        "gateway_ms_per_line": gateway,
        "gateway_cores": cores(gateway),
        "outside": outside,
        "machine_ms_per_line": machine,
        "machine_cores": cores(machine),
    }


def render_cpu_per_line(per: dict) -> list[str]:
    """The per-line CPU table: each gateway role, their total, then the rest of the machine and its total."""

    def row(label: str, ms: float, busy: float | None, each: dict | None = None) -> tuple[str, ...]:
        detail = ", ".join(f"{k} {v:.2f}" for k, v in each.items()) if each and len(each) > 1 else ""
        return (label, f"{ms:.2f}", "-" if busy is None else f"{busy:.2f}", detail)

    rows = [row(p["process"], p["ms_per_line"], p["cores"], p["each"]) for p in per["processes"]]
    rows.append(row("gateway total", per["gateway_ms_per_line"], per["gateway_cores"]))
    rows += [row(p["process"], p["ms_per_line"], p["cores"]) for p in per["outside"]]
    rows.append(row("machine total", per["machine_ms_per_line"], per["machine_cores"]))
    return [
        "batch CPU per line while draining (the probe's sync requests included; cores busy: 1.00 = one core all "
        "the time)",
        *tables.table(("process", "CPU ms/line", "cores busy", "per process"), rows, left=1, right_until=3),
    ]
