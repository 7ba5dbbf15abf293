"""Billing a job: its ledger row and its key's running spend, written together (llmproxy.jobs.finish calls it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import cast

from sqlalchemy import Connection, Table, bindparam

from llmproxy.billing.cost import Prices, Usage
from llmproxy.storage.models import ApiKey, UsageEntry

# Declarative classes type `__table__` as a FromClause; a mapped class's is always a Table.
LEDGER, _KEYS = cast(Table, UsageEntry.__table__), cast(Table, ApiKey.__table__)

_INSERT_LEDGER = LEDGER.insert()

# Increment in SQL so concurrent jobs of one key never lose an update.
_ADD_SPEND = (
    _KEYS.update()
    .where(_KEYS.c.id == bindparam("p_key"))
    .values(spend_usd=_KEYS.c.spend_usd + bindparam("p_cost", type_=_KEYS.c.spend_usd.type))
)


@dataclass(frozen=True)
class Charge:
    """One job's bill: its ledger row, and what is added to its key's spend."""

    job_id: str
    api_key_id: str
    model_requested: str
    model_served: str | None
    provider_served: str | None
    usage: Usage
    prices: Prices
    cost_usd: Decimal
    latency_ms: int | None
    outcome: str
    created_at: datetime
    deployment_served: int | None = None


def record_charge(conn: Connection, charge: Charge) -> None:
    """Insert the ledger row and add its cost to the key's spend, in the caller's transaction.

    The ledger is unique per job: billing a job twice raises IntegrityError, and the caller's
    transaction (which also stores the job's outcome) rolls back whole.
    """
    record_charges(conn, [charge])


def record_charges(conn: Connection, charges: list[Charge]) -> None:
    """Insert many ledger rows and add their costs to their keys' spend: one statement of each, many rows."""
    if not charges:
        return
    conn.execute(_INSERT_LEDGER, [_ledger_row(charge) for charge in charges])
    spend: dict[str, Decimal] = {}
    for charge in charges:
        spend[charge.api_key_id] = spend.get(charge.api_key_id, Decimal(0)) + charge.cost_usd
    # Sorted, so two writers updating the same keys lock them in the same order (no deadlock).
    conn.execute(_ADD_SPEND, [{"p_key": key, "p_cost": cost} for key, cost in sorted(spend.items())])


def _ledger_row(charge: Charge) -> dict[str, object]:
    return {
        "job_id": charge.job_id,
        "api_key_id": charge.api_key_id,
        "model_requested": charge.model_requested,
        "model_served": charge.model_served,
        "provider_served": charge.provider_served,
        "deployment_id": charge.deployment_served,
        "prompt_tokens": charge.usage.prompt_tokens,
        "completion_tokens": charge.usage.completion_tokens,
        "cached_prompt_tokens": charge.usage.cached_prompt_tokens,
        "tokens_estimated": charge.usage.estimated,
        "input_cost_per_1m": charge.prices.input_per_1m,
        "output_cost_per_1m": charge.prices.output_per_1m,
        "cached_input_cost_per_1m": charge.prices.cached_input_per_1m,
        "cache_write_tokens": charge.usage.cache_write_tokens,
        "cache_write_cost_per_1m": charge.prices.cache_write_per_1m,
        "cost_usd": charge.cost_usd,
        "latency_ms": charge.latency_ms,
        "outcome": charge.outcome,
        "created_at": charge.created_at,
    }
