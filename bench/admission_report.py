"""The admission scenario in the report: the same proxy with a key without limits and with generous limits."""

from __future__ import annotations

from bench import tables
from bench.loadgen import LevelResult


def render_admission(adm: dict) -> list[str]:
    """The admission table: per level, stub, no limits, limits, their difference, the check and its result."""
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
