"""Metric label values from bounded sets: anything a caller could vary freely collapses into `other`.

Every label value becomes a Redis hash field that is never deleted and a Prometheus series that is
scraped for ever, so a value a request chooses (a made-up HTTP method, say) must not become one.
Routes are Flask's route templates (a finite set), models and providers come from the catalog (the
model that served, never the name a caller typed), outcomes from the provider error taxonomy.
"""

from __future__ import annotations

from llmproxy.providers.errors import ProviderError

OTHER = "other"
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _taxonomy_outcomes() -> frozenset[str]:
    """Every outcome the provider error taxonomy can name (its classes and their subclasses)."""
    found, classes = set(), [ProviderError]
    while classes:
        cls = classes.pop()
        found.add(cls.outcome)
        classes.extend(cls.__subclasses__())
    return frozenset(found)


# A served attempt, the taxonomy's failures, and the two outcomes routing itself records.
OUTCOMES = frozenset({"ok", "no_credentials", "cancelled"}) | _taxonomy_outcomes()


def method_label(method: str) -> str:
    """The request's HTTP method if it is a standard one, else `other`."""
    return method if method in HTTP_METHODS else OTHER


def status_label(status: int) -> str:
    """An HTTP status code (100-599) as text, else `other`."""
    return str(status) if 100 <= status <= 599 else OTHER


def outcome_label(outcome: object) -> str:
    """An upstream attempt's outcome if the taxonomy has it, else `other`."""
    return outcome if isinstance(outcome, str) and outcome in OUTCOMES else OTHER
