"""RFC 7240 `Prefer` headers: `respond-async` and `wait=N`."""

from __future__ import annotations

from llmproxy.errors import bad_request


def parse_prefer(header: str) -> dict[str, str]:
    """Preferences, e.g. `respond-async, wait=10` → {"respond-async": "", "wait": "10"}."""
    prefs = {}
    for part in header.replace(";", ",").split(","):
        name, _, value = part.strip().partition("=")
        if name:
            prefs[name.lower()] = value.strip().strip('"')
    return prefs


def prefer_wait(prefer: dict[str, str], *, ceiling: float) -> float | None:
    """Seconds of `Prefer: wait=N` (at most `ceiling`, the sync timeout), or None."""
    if "wait" not in prefer:
        return None
    try:
        wait = float(prefer["wait"])
    except ValueError:
        raise bad_request("Prefer: wait must be a number of seconds", param="Prefer") from None
    return max(0.0, min(wait, ceiling))
