"""CLI commands for keys, providers and models; they share the admin API's services."""

from __future__ import annotations

from typing import Any

import click
import redis
from sqlalchemy.orm import Session

from llmproxy.catalog.model_config import create_model, delete_model, list_models, model_json, update_model
from llmproxy.catalog.modes import MODES
from llmproxy.catalog.provider_config import (
    create_provider,
    delete_provider,
    list_providers,
    provider_json,
    update_provider,
)
from llmproxy.config import Settings
from llmproxy.devtools.cli.app import F, emit, given, main, stdin_secret, with_session
from llmproxy.jobs import key_changes
from llmproxy.jsontypes import JSON
from llmproxy.keys import virtual_keys
from llmproxy.keys.virtual_keys import key_json
from llmproxy.providers import provider_kinds
from llmproxy.resources import redis_client


@main.group(name="keys")
def keys_group() -> None:
    """Virtual keys."""


@keys_group.command("create")
@click.option("--name", default="")
@click.option("--rpm", "rpm_limit", type=int)
@click.option("--tpm", "tpm_limit", type=int)
@click.option("--budget", "budget_usd")
@click.option("--model", "models", multiple=True, help="Allowed model (repeat); default all.")
@click.option("--max-parallel", "max_parallel_requests", type=int, help="Requests in flight at once.")
@click.option("--max-queued", "max_queued_jobs", type=int, help="Async jobs and batch lines not yet ended.")
@click.option(
    "--max-file-storage", "max_file_storage_bytes", type=int, help="Bytes of uploaded files kept; 0: no quota."
)
@with_session
def keys_create(
    session: Session,
    _settings: Settings,
    /,
    name: str,
    models: tuple[str, ...],
    **limits: Any,
) -> None:
    """Create a key and print its secret (shown this once)."""
    key, secret = virtual_keys.create_key(session, given(name=name, models=list(models) or None, **limits))
    emit({**key_json(key), "key": secret})


@keys_group.command("list")
@with_session
def keys_list(session: Session, _settings: Settings) -> None:
    """List keys."""
    emit([key_json(k) for k in virtual_keys.list_keys(session)])


@keys_group.command("update")
@click.argument("key_id")
@click.option("--name")
@click.option("--rpm", "rpm_limit", type=int)
@click.option("--tpm", "tpm_limit", type=int)
@click.option("--budget", "budget_usd")
@click.option("--max-parallel", "max_parallel_requests", type=int, help="Requests in flight at once.")
@click.option("--max-queued", "max_queued_jobs", type=int, help="Async jobs and batch lines not yet ended.")
@click.option(
    "--max-file-storage", "max_file_storage_bytes", type=int, help="Bytes of uploaded files kept; 0: no quota."
)
@with_session
def keys_update(session: Session, _settings: Settings, /, key_id: str, **options: Any) -> None:
    """Change a key's name, limits or budget."""
    key = virtual_keys.get_key(session, key_id)
    virtual_keys.apply_key_fields(session, key, given(**options))
    emit(key_json(key))


@keys_group.command("revoke")
@click.argument("key_id")
@with_session
def keys_revoke(session: Session, settings: Settings, key_id: str) -> None:
    """Revoke a key at once; its queued work fails and its running work stops (when Redis is reachable)."""
    key = virtual_keys.get_key(session, key_id)
    virtual_keys.revoke_key(session, key)
    if settings.redis_url:
        # Committed with the revocation; a long-poll of a failed job sees it when its wait ends.
        client = redis_client(settings.redis_url)
        try:
            key_changes.stop_disallowed_work(session, client, key)
        except redis.RedisError:
            click.echo("warning: Redis did not answer: queued jobs fail when a worker reaches them", err=True)
        finally:
            client.close()
    emit(key_json(key))


@main.group()
def providers() -> None:
    """Upstream providers."""


@providers.command("list")
@with_session
def providers_list(session: Session, _settings: Settings) -> None:
    """List providers."""
    emit([provider_json(p) for p in list_providers(session)])


@providers.command("add")
@click.argument("name")
@click.option("--kind", type=click.Choice(provider_kinds()), required=True)
@click.option("--api-base", required=True)
@click.option("--api-key", help="Stored encrypted. Prefer --api-key-stdin to keep it out of shell history.")
@click.option("--api-key-stdin", is_flag=True)
@with_session
def providers_add(
    session: Session, settings: Settings, name: str, kind: str, api_base: str, api_key: str | None, api_key_stdin: bool
) -> None:
    """Add a provider."""
    secret = stdin_secret() if api_key_stdin else api_key
    data = given(name=name, kind=kind, api_base=api_base, api_key=secret)
    emit(provider_json(create_provider(session, data, encryption_key=settings.encryption_key)))


@providers.command("edit")
@click.argument("name")
@click.option("--kind", type=click.Choice(provider_kinds()))
@click.option("--api-base")
@click.option("--api-key")
@click.option("--api-key-stdin", is_flag=True)
@click.option("--enabled/--disabled", default=None)
@with_session
def providers_edit(
    session: Session,
    settings: Settings,
    name: str,
    kind: str | None,
    api_base: str | None,
    api_key: str | None,
    api_key_stdin: bool,
    enabled: bool | None,
) -> None:
    """Change a provider."""
    secret = stdin_secret() if api_key_stdin else api_key
    data = given(kind=kind, api_base=api_base, api_key=secret, enabled=enabled)
    emit(provider_json(update_provider(session, name, data, encryption_key=settings.encryption_key)))


@providers.command("delete")
@click.argument("name")
@with_session
def providers_delete(session: Session, _settings: Settings, name: str) -> None:
    """Remove a provider no model uses."""
    delete_provider(session, name)
    click.echo(f"deleted provider {name}")


@main.group()
def models() -> None:
    """Models, prices and fallbacks."""


def _model_options(func: F) -> F:
    for option in reversed(
        [
            click.option("--mode", type=click.Choice(MODES), help="chat (default) or embedding."),
            click.option("--provider"),
            click.option("--upstream-model"),
            click.option("--fallback", "fallbacks", multiple=True, help="Fallback model, in order (repeat)."),
            click.option("--no-fallbacks", is_flag=True),
            click.option("--input-per-1m", "input_cost_per_1m"),
            click.option("--output-per-1m", "output_cost_per_1m"),
            click.option("--cached-input-per-1m", "cached_input_cost_per_1m"),
            click.option("--cache-write-per-1m", "cache_write_cost_per_1m"),
            click.option("--context-window", type=int),
            click.option("--enabled/--disabled", default=None),
        ]
    ):
        func = option(func)
    return func


def _model_data(fallbacks: tuple[str, ...], no_fallbacks: bool, **options: Any) -> JSON:
    data = given(**options)
    if fallbacks or no_fallbacks:
        data["fallbacks"] = list(fallbacks)
    return data


@models.command("list")
@with_session
def models_list(session: Session, _settings: Settings) -> None:
    """List models with prices per 1M tokens."""
    emit([model_json(m) for m in list_models(session)])


@models.command("add")
@click.argument("name")
@_model_options
@with_session
def models_add(session: Session, _settings: Settings, /, name: str, **options: Any) -> None:
    """Add a model."""
    emit(model_json(create_model(session, {"name": name, **_model_data(**options)})))


@models.command("edit")
@click.argument("name")
@_model_options
@with_session
def models_edit(session: Session, _settings: Settings, /, name: str, **options: Any) -> None:
    """Change a model (provider, prices, fallbacks…)."""
    emit(model_json(update_model(session, name, _model_data(**options))))


@models.command("set-price")
@click.argument("name")
@click.option("--input-per-1m", "input_cost_per_1m", required=True)
@click.option("--output-per-1m", "output_cost_per_1m", required=True)
@click.option("--cached-input-per-1m", "cached_input_cost_per_1m")
@click.option("--cache-write-per-1m", "cache_write_cost_per_1m")
@with_session
def models_set_price(session: Session, _settings: Settings, /, name: str, **prices: Any) -> None:
    """Set a model's prices in USD per 1M tokens."""
    emit(model_json(update_model(session, name, given(**prices))))


@models.command("delete")
@click.argument("name")
@with_session
def models_delete(session: Session, _settings: Settings, name: str) -> None:
    """Remove a model that is nobody's fallback."""
    delete_model(session, name)
    click.echo(f"deleted model {name}")
