"""Import model prices and context windows from LiteLLM's `model_prices_and_context_window.json`.

LiteLLM prices per token; we store USD per 1M tokens. Numbers are parsed from
the JSON text as Decimal, so 1.5e-06 becomes exactly 1.5 per 1M, never
1.4999999999999998.

Matching: a configured model takes the first entry found among its `name`,
`<provider>/<name>`, `upstream_model` and `<provider>/<upstream_model>`
(LiteLLM prefixes most non-OpenAI models with their provider, e.g.
`mistral/mistral-tiny`). Only the fields an entry gives are changed, so an
entry without a cache price leaves the model's cached-input price alone.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, TypedDict

from sqlalchemy.orm import Session

from llmproxy.catalog.model_config import create_model, find_model, list_models, update_model
from llmproxy.catalog.provider_config import get_provider
from llmproxy.errors import bad_request
from llmproxy.jsontypes import JSON
from llmproxy.storage.models import ModelConfig
from llmproxy.storage.money import MONEY_QUANTUM, money

PER_TOKEN_PRICES = {
    "input_cost_per_token": "input_cost_per_1m",
    "output_cost_per_token": "output_cost_per_1m",
    "cache_read_input_token_cost": "cached_input_cost_per_1m",
    "cache_creation_input_token_cost": "cache_write_cost_per_1m",
}
# Entries of other modes (image_generation, audio…) are priced per other units. Our mode of each served one:
SERVED_MODES = {None: "chat", "chat": "chat", "completion": "chat", "embedding": "embedding"}
ONE_MILLION = Decimal(1_000_000)
MAX_PRICE_PER_1M = Decimal(10) ** 15  # well inside the Money column's NUMERIC(28, 12)

# A model's fields from one entry: prices per 1M as Decimal, context_window as int.
Fields = dict[str, Decimal | int]


class ImportReport(TypedDict):
    """What an import changed (or, with dry_run, would change)."""

    dry_run: bool
    updated: list[JSON]
    added: list[JSON]
    unchanged: list[str]
    skipped: list[JSON]
    models_without_entry: list[str]
    entries_not_configured: int


def load_prices(text: str) -> JSON:
    """Parse the file's text (floats as exact Decimals), dropping LiteLLM's `sample_spec` template; 400 if unusable."""
    try:
        data = json.loads(text, parse_float=Decimal)
    except ValueError as exc:
        raise bad_request(f"The prices file is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise bad_request("The prices file must be a JSON object of model name -> prices")
    data.pop("sample_spec", None)
    return data


def _number(spec: JSON, field: str) -> Decimal | None:
    value = spec.get(field)
    if value is None:
        return None
    # bool is an int subclass; NaN/Infinity arrive as floats (parse_constant), so both are refused here.
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)) or not Decimal(value).is_finite() or value < 0:
        raise ValueError(f"'{field}' is not a non-negative number")
    return Decimal(value)


def _positive_int(spec: JSON, field: str) -> int | None:
    value = spec.get(field)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def entry_fields(spec: Any) -> Fields:
    """One entry's model fields: prices per 1M (exact, at storage precision), context window; ValueError if unusable."""
    if not isinstance(spec, dict):
        raise ValueError("entry is not an object")
    fields: Fields = {}
    for per_token, per_1m in PER_TOKEN_PRICES.items():
        value = _number(spec, per_token)
        if value is not None:
            if value * ONE_MILLION >= MAX_PRICE_PER_1M:
                raise ValueError(f"'{per_token}' is too large")
            fields[per_1m] = (value * ONE_MILLION).quantize(MONEY_QUANTUM)
    if "input_cost_per_1m" not in fields or "output_cost_per_1m" not in fields:
        raise ValueError("no per-token input and output prices")
    # LiteLLM's max_tokens is a legacy field that often means the output limit; prefer max_input_tokens.
    window = _positive_int(spec, "max_input_tokens") or _positive_int(spec, "max_tokens")
    if window is not None:
        fields["context_window"] = window
    return fields


def _match(model: ModelConfig, entries: JSON) -> str | None:
    provider = model.provider.name
    for name in (model.name, f"{provider}/{model.name}", model.upstream_model, f"{provider}/{model.upstream_model}"):
        if name in entries:
            return name
    return None


def _changes(model: ModelConfig, fields: Fields) -> JSON:
    changes: JSON = {}
    for field, new in fields.items():
        old = getattr(model, field)
        if old != new:
            shown = (money(old), money(new)) if isinstance(new, Decimal) else (old, new)  # prices, else the window
            changes[field] = {"from": shown[0], "to": shown[1]}
    return changes


def _for_api(fields: Fields) -> JSON:
    """Fields as catalog's validators take them (prices as decimal strings)."""
    return {k: (format(v, "f") if isinstance(v, Decimal) else v) for k, v in fields.items()}


def import_prices(
    session: Session,
    entries: JSON,
    *,
    add_missing: bool = False,
    provider: str | None = None,
    litellm_provider: str | None = None,
    dry_run: bool = False,
) -> ImportReport:
    """Update configured models from LiteLLM entries (and with `add_missing`, create that provider's others); report it.

    New models are created under `provider` from the entries whose `litellm_provider`
    is `litellm_provider` (default: the same name) and whose mode is chat or completion.
    With `dry_run` the report is the same and nothing is written.
    """
    if add_missing:
        if not provider:
            raise bad_request("Adding missing models needs the provider to create them under", param="provider")
        get_provider(session, provider)  # 404 before anything is written
    elif provider:
        raise bad_request("A provider is only used when adding missing models", param="provider")
    report: ImportReport = {
        "dry_run": dry_run,
        "updated": [],
        "added": [],
        "unchanged": [],
        "skipped": [],
        "models_without_entry": [],
        "entries_not_configured": 0,
    }
    used: set[str] = set()
    for model in list_models(session):
        entry = _match(model, entries)
        if entry is None:
            report["models_without_entry"].append(model.name)
            continue
        used.add(entry)
        try:
            fields = entry_fields(entries[entry])
        except ValueError as exc:
            report["skipped"].append({"model": model.name, "entry": entry, "reason": str(exc)})
            continue
        changes = _changes(model, fields)
        if not changes:
            report["unchanged"].append(model.name)
            continue
        report["updated"].append({"model": model.name, "entry": entry, "changes": changes})
        if not dry_run:
            update_model(session, model.name, _for_api({k: fields[k] for k in changes}))
    wanted = (litellm_provider or provider) if add_missing else None
    planned: set[str] = set()
    for entry, spec in entries.items():
        if entry in used:
            continue
        if not (wanted and isinstance(spec, dict) and spec.get("litellm_provider") == wanted):
            report["entries_not_configured"] += 1
            continue
        name = entry.removeprefix(f"{wanted}/")
        reason = None
        if spec.get("mode") not in SERVED_MODES:
            reason = f"mode '{spec.get('mode')}' is not served by this proxy"
        elif name in planned or find_model(session, name) is not None:
            reason = f"a model named '{name}' already exists"
        else:
            try:
                fields = entry_fields(spec)
            except ValueError as exc:
                reason = str(exc)
        if reason:
            report["skipped"].append({"entry": entry, "reason": reason})
            continue
        planned.add(name)
        report["added"].append(
            {
                "model": name,
                "entry": entry,
                "provider": provider,
                "upstream_model": name,
                "mode": SERVED_MODES[spec.get("mode")],
                **{k: (money(v) if isinstance(v, Decimal) else v) for k, v in fields.items()},
            }
        )
        if not dry_run:
            mode = SERVED_MODES[spec.get("mode")]
            create_model(
                session,
                {"name": name, "mode": mode, "provider": provider, "upstream_model": name, **_for_api(fields)},
            )
    return report
