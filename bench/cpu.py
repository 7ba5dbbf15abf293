"""Where the CPU went during a level: per component (web, worker, PostgreSQL, …) and for the whole machine.

On a 2-core box the proxy, its upstream stub, the load generator, PostgreSQL and Redis all share
the same cores, so CPU milliseconds per request are the clearest sign of what limits throughput.
"""

from __future__ import annotations

import os
from collections.abc import Callable

try:
    import psutil
except ImportError:  # psutil comes with requirements-dev.txt; without it the report just has no CPU lines
    psutil = None

Finder = Callable[[], list]


def tree(pid_of: Callable[[], int | None]) -> Finder:
    """A process and all its descendants."""

    def find() -> list:
        pid = pid_of()
        if psutil is None or pid is None:
            return []
        try:
            root = psutil.Process(pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    return find


def named(*names: str) -> Finder:
    """Every process with one of these names (PostgreSQL backends, redis-server)."""

    def find() -> list:
        if psutil is None:
            return []
        return [p for p in psutil.process_iter(["name"]) if (p.info.get("name") or "").split(":")[0] in names]

    return find


class CpuMeter:
    """Snapshots of CPU seconds per component; `delta` turns two of them into a per-level account."""

    def __init__(self, components: dict[str, Finder]) -> None:
        # The bench process alone (its children are the stub and the proxy, counted on their own).
        self.components = {"loadgen": lambda: [psutil.Process(os.getpid())] if psutil else [], **components}

    @property
    def available(self) -> bool:
        return psutil is not None

    def snapshot(self) -> dict | None:
        if psutil is None:
            return None
        per: dict[str, dict[int, float]] = {}
        for name, find in self.components.items():
            seen: dict[int, float] = {}
            for proc in find():
                try:
                    t = proc.cpu_times()
                    # Keyed by (pid, create time) so a recycled pid is not mistaken for the same process.
                    seen[(proc.pid, proc.create_time())] = t.user + t.system
                except psutil.Error:
                    pass
            per[name] = seen
        machine = psutil.cpu_times()
        busy = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
        return {"per": per, "busy": busy}

    @staticmethod
    def delta(before: dict | None, after: dict | None, *, wall_s: float, requests: int) -> dict | None:
        """CPU ms per request of each component, the rest of the machine as `other`, and how busy it was."""
        if before is None or after is None or requests <= 0:
            return None
        spent: dict[str, float] = {}
        for name, procs in after["per"].items():
            old = before["per"].get(name, {})
            spent[name] = sum(max(0.0, t - old.get(key, 0.0)) for key, t in procs.items())
        busy = max(0.0, after["busy"] - before["busy"])
        spent["other"] = max(0.0, busy - sum(spent.values()))
        cpus = psutil.cpu_count() or 1
        return {
            "cpu_ms_per_request": {k: round(v * 1000.0 / requests, 3) for k, v in spent.items()},
            "machine_busy_pct": round(100.0 * busy / (wall_s * cpus), 1) if wall_s > 0 else None,
        }


def describe(account: dict | None) -> str:
    """One line: `cpu/req web 3.1 worker 4.2 … ms | machine 97% busy`."""
    if not account:
        return ""
    parts = " ".join(f"{k} {v:.2f}" for k, v in account["cpu_ms_per_request"].items() if v >= 0.005)
    return f"cpu ms/req: {parts} | machine {account['machine_busy_pct']:.0f}% busy"
