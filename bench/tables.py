"""Plain-text tables and the figures in them: the formatting every part of the report shares."""

from __future__ import annotations

from collections.abc import Sequence


def compare(base: float | None, value: float | None, kind: str) -> float | None:
    """A row's delta: value ÷ base for "ratio", value − base for "added" and "count", none for "none"."""
    if base is None or value is None:
        return None
    if kind == "ratio":
        return value / base if base else None
    return value - base if kind in ("added", "count") else None


def delta(a: float | None, b: float | None) -> float | None:
    """b − a, or None when either is missing."""
    return None if a is None or b is None else b - a


def status(passed: bool | None) -> str | None:
    """PASS/MISS of a row with a target or check; None for a row without one."""
    return None if passed is None else ("PASS" if passed else "MISS")


def num(value: float | None, unit: str) -> str:
    """A figure as the tables show it: whole numbers for counts and big rates, one decimal otherwise."""
    if value is None:
        return "-"
    if unit == "count":
        return f"{value:.0f}"
    return f"{value:.0f}" if unit in ("req/s", "lines/s") and value >= 100 else f"{value:.1f}"


def delta_text(value: float | None, kind: str) -> str:
    """A delta as the tables show it: `0.93×`, `+4.0 ms` or `+3`."""
    if value is None:
        return "-"
    if kind == "ratio":
        return f"{value:.2f}×"
    if kind == "count":
        return f"{value:+.0f}"
    return f"{value:+.1f} ms"


def table(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, left: int = 2, right_until: int | None = None
) -> list[str]:
    """Aligned plain-text columns: the first `left` left-aligned, the figures right-aligned, the rest left."""
    lines_in = [header, *rows]
    right_until = len(header) - 2 if right_until is None else right_until
    widths = [max(len(row[i]) for row in lines_in) for i in range(len(header))]
    lines = []
    for i, row in enumerate(lines_in):
        cells = [
            cell.ljust(w) if j < left or j >= right_until else cell.rjust(w)
            for j, (cell, w) in enumerate(zip(row, widths))
        ]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines
