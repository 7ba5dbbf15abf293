"""The record of an ended job on its way to PostgreSQL: appended by the job's finish, read by the writer.

A record entry holds the job's static part as the live state has it (`job`, JSON), its
final status and run, when it started, its outcome (`final`, JSON), its bill (`charge`, JSON
or empty) and when it ended (`at`, ms). `encode_*` and `Record.decode` are the only places
that know these shapes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from llmproxy.billing.cost import Prices, Usage
from llmproxy.billing.ledger import Charge
from llmproxy.jobs.outcome import Outcome
from llmproxy.jsontypes import JSON
from llmproxy.responses.validation import stores
from llmproxy.storage.money import money

RECORDS_STREAM = "llmproxy:records"


def dumps(value: Any) -> str:
    """Compact JSON, as every record field is written."""
    return json.dumps(value, separators=(",", ":"))


def from_epoch_ms(value: float | None) -> datetime | None:
    """A stored timestamp from Redis milliseconds."""
    return None if value is None else datetime.fromtimestamp(value / 1000, UTC)


def encode_final(outcome: Outcome, completed_at_ms: int) -> str:
    """The outcome fields of the job row, as JSON."""
    return dumps(
        {
            "result": outcome.result,
            "error": outcome.error,
            "error_status": outcome.error_status,
            "attempts": outcome.attempts,
            "usage": outcome.usage.as_openai() if outcome.usage else None,
            "cost_usd": money(outcome.cost_usd),
            "served_model": outcome.served_model,
            "served_provider": outcome.served_provider,
            "completed_at": completed_at_ms,
        }
    )


def encode_charge(outcome: Outcome) -> str:
    """The ledger part of a billed outcome as JSON; empty when there is nothing to bill."""
    if outcome.usage is None or outcome.cost_usd is None or outcome.prices is None:
        return ""
    usage, prices = outcome.usage, outcome.prices
    return dumps(
        {
            "model_served": outcome.served_model,
            "provider_served": outcome.served_provider,
            "deployment_served": outcome.served_deployment,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cached_prompt_tokens": usage.cached_prompt_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
            "estimated": usage.estimated,
            "input_per_1m": money(prices.input_per_1m),
            "output_per_1m": money(prices.output_per_1m),
            "cached_input_per_1m": money(prices.cached_input_per_1m),
            "cache_write_per_1m": money(prices.cache_write_per_1m),
            "cost_usd": money(outcome.cost_usd),
            "latency_ms": outcome.latency_ms,
        }
    )


def _decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


@dataclass(frozen=True)
class Record:
    """One ended job as the writer stores it: its row's values, and its charge if it was billed."""

    entry_id: str
    job_id: str
    stored: bool  # the job has a row already (async jobs, batch lines): update it, do not insert
    row: JSON
    charge: Charge | None
    ended_at_ms: int

    @classmethod
    def decode(cls, entry_id: str, fields: dict[bytes, bytes]) -> Record:
        """A record from its stream entry (raises KeyError or ValueError on a malformed one)."""
        text = {k.decode(): v.decode() for k, v in fields.items()}
        job = json.loads(text["job"])
        final = json.loads(text["final"])
        ended_at = int(text["at"])
        started = text.get("started_at") or None
        completed_at = from_epoch_ms(final.get("completed_at") or ended_at)
        row = {
            "id": text["id"],
            "api_key_id": job["api_key_id"],
            "model": job["model"],
            "status": text["status"],
            "queue": job["queue"],
            "operation": job.get("operation") or "chat",
            "stream": bool(job.get("stream")),
            "request": job["request"],
            "meta": job.get("meta"),
            "batch_id": job.get("batch_id"),
            "custom_id": job.get("custom_id"),
            "result": final.get("result"),
            "error": final.get("error"),
            "error_status": final.get("error_status"),
            "attempts": final.get("attempts") or [],
            "usage": final.get("usage"),
            "cost_usd": _decimal(final.get("cost_usd")),
            "served_model": final.get("served_model"),
            "served_provider": final.get("served_provider"),
            "run_count": int(text.get("run") or 0),
            "created_at": from_epoch_ms(job["created_at"]),
            "started_at": from_epoch_ms(int(started)) if started else None,
            "completed_at": completed_at,
        }
        if row["operation"] == "responses" and not stores(row["request"]):
            # store: false (a Responses request): answered and billed, its words not kept.
            row["request"], row["result"] = {"model": job["model"], "store": False}, None
        charge = None
        if text.get("charge"):
            c = json.loads(text["charge"])
            charge = Charge(
                job_id=text["id"],
                api_key_id=job["api_key_id"],
                model_requested=job["model"],
                model_served=c["model_served"],
                provider_served=c["provider_served"],
                # .get(): a record appended before deployments existed has none.
                deployment_served=c.get("deployment_served"),
                # .get(): a record appended before cache writes were recorded has neither field.
                usage=Usage(
                    c["prompt_tokens"],
                    c["completion_tokens"],
                    c["cached_prompt_tokens"],
                    c["estimated"],
                    cache_write_tokens=c.get("cache_write_tokens") or 0,
                ),
                prices=Prices(
                    Decimal(c["input_per_1m"]),
                    Decimal(c["output_per_1m"]),
                    _decimal(c["cached_input_per_1m"]),
                    _decimal(c.get("cache_write_per_1m")),
                ),
                cost_usd=Decimal(c["cost_usd"]),
                latency_ms=c["latency_ms"],
                outcome=text["status"],
                created_at=completed_at or datetime.now(UTC),
            )
        return cls(entry_id, text["id"], bool(job.get("stored")), row, charge, ended_at)
